"""The viewer-feedback learner's state in Redis (`streams.mixer.viewer_feedback` is its math).

One hash per viewer, `{app}:fb:<user>`: field `<author>` holds "engaged expected ts", the sums over
the seen served tweets of that author faded to `ts` (ms); field `viewer` the same over every
author. Each field keeps its own `ts`, so that learning rewrites only the fields it adds to: the
fitter learns inside its MULTI (`queue_learning`: a crash or a racing fitter learns each served
item exactly once, with the calibration), where Redis serves nothing else, and a viewer's hash
holds an entry per author read in the last days. The ranked hydration reads the viewer's and the
request's authors' fields (`lift_fields`, `decode_lifts`; `hydrate.lua` is handed `VIEWER` and
names an author's field by its id, as `lift_fields` does, and tests/integration/test_hydration.py
reads through it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

from redis.asyncio.client import Pipeline

from streams.mixer.viewer_feedback import FEEDBACK_HALF_LIFE_MS, VIEWER, Evidence, fade_factor, feedback_lift
from streams.serving.keys import feedback_key
from streams.serving.scripts import Script

# Past this many fields a learning also drops every author whose sums have faded below
# NEGLIGIBLE (~5 half-lives after the viewer's last look at one tweet): they no longer move a
# lift. Below it nothing is swept, so a learning costs what it adds.
SWEEP_ABOVE: Final = 1000
NEGLIGIBLE: Final = 1e-3
# A viewer gone this long has no feedback worth keeping (10 half-lives: 1/1000 of it left).
KEEP_MS: Final = int(10 * FEEDBACK_HALF_LIFE_MS)


# Fades a viewer's stored sums to now and adds the increments, per field; sweeps faded fields.
LEARN = Script("streams.ranked", "learn.lua")


def queue_learning(pipe: Pipeline, user_id: int, now_ms: int, seen: Mapping[int, Evidence]) -> None:
    """Queue in `pipe` the viewer's newly seen served tweets, summed per author (`LEARN`); run
    it with `streams.serving.scripts.execute`."""
    if not seen:
        return
    total = sum(seen.values(), Evidence())
    sums: list[tuple[str | int, Evidence]] = [*seen.items(), (VIEWER, total)]
    increments = [v for key, e in sums for v in (key, e.engaged, e.expected)]
    LEARN.queue(
        pipe,
        [feedback_key(user_id)],
        [now_ms, FEEDBACK_HALF_LIFE_MS, KEEP_MS, SWEEP_ABOVE, NEGLIGIBLE, *increments],
    )


def lift_fields(authors: Sequence[str | int]) -> list[str]:
    """The fields a request reads, in the order `decode_lifts` takes their values."""
    return [VIEWER, *map(str, authors)]


def stored_evidence(stored: bytes, now_ms: int | None) -> Evidence | None:
    """One field's sums faded to `now_ms` (None: as stored); None for a value `LEARN` did not
    write (learning overwrites it)."""
    try:
        engaged, expected, ts = map(float, stored.split())
    except ValueError:
        return None
    evidence = Evidence(engaged, expected)
    return evidence if now_ms is None else evidence.faded(fade_factor(now_ms - ts))


def decode_lifts(
    values: Sequence[bytes | None], authors: Sequence[int], now_ms: int | None
) -> dict[int, float]:
    """The authors' lifts from the values of `lift_fields(authors)`, the sums faded to `now_ms`
    (None: not faded, learning is frozen); authors with no feedback are left out (their lift is 1)."""
    viewer = stored_evidence(values[0], now_ms) if values and values[0] is not None else None
    if viewer is None:
        return {}
    lifts = {}
    for author, stored in zip(authors, values[1:], strict=True):
        evidence = stored_evidence(stored, now_ms) if stored is not None else None
        if evidence is not None:
            lift = feedback_lift(evidence, viewer)
            if math.isfinite(lift):
                lifts[author] = lift
    return lifts
