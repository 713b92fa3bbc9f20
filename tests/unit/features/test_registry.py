from streams.features.aggregates import ENGAGEMENT_TYPES, DecayedCounts, apply, feature_vector
from streams.features.registry import FEATURES_DOC, REGISTRY, render_markdown


def test_committed_feature_doc_is_the_generated_one() -> None:
    assert FEATURES_DOC.read_text() == render_markdown(), "run: python -m streams.features.registry"


def test_every_emitted_engagement_feature_is_registered() -> None:
    state: DecayedCounts | None = None
    for i, kind in enumerate(ENGAGEMENT_TYPES):
        state = apply(state, kind, 1_000 + i)
    assert state is not None
    emitted = set(feature_vector(state, state.last_ts))
    registered = {f.name for f in REGISTRY}
    assert emitted <= registered
    assert len(emitted) == len(ENGAGEMENT_TYPES) * 5
