"""The topology of the seed design, one module per processing node, wired on `streams.app.app`.

Importing this package registers every node's agents and views on the app.
"""

from topologies import (  # noqa: F401  (registration by import)
    aggregator,
    fanout,
    feature_extractor,
    feature_updater,
    learning,
    parser,
    request_metrics,
    score_calculator,
    signal_booster,
    state_view,
    timeline_view,
    web,
    window_calculator,
)
