"""Node `calibration fitter`: served ranked items and their outcomes -> the scorer's calibration.

A leader-only timer. Every tick it learns from the ranked items whose label window
(`HOMEMIXER_CALIBRATION_LABEL_S`) has passed: the raw predictions each was served with against
what its viewer did (`streams.served_outcomes`), one Platt fit per segment and kind, which every
ranked read then scores with. With learning frozen it only forgets them.
"""

from __future__ import annotations

import logging
import time

from streams.app import app, redis_client, settings
from streams.served_outcomes import fit_calibration

log = logging.getLogger(__name__)

# A tick every quarter label window (at most 30 s): an item waits at most 1.25 windows.
FIT_INTERVAL_S = min(30.0, max(0.5, settings.calibration_label_s / 4))


async def fit_served_outcomes() -> None:
    now_ms = int(time.time() * 1000)
    learn = not settings.freeze_learning
    fitted = await fit_calibration(redis_client(), now_ms, settings.calibration_label_s * 1000, learn)
    if fitted.taken:
        log.info(
            "calibration: learnt from %d served items, %d not learnt (unseen or frozen), %d records lost",
            fitted.learnt,
            fitted.not_learnt,
            fitted.lost,
        )


app.timer(FIT_INTERVAL_S, on_leader=True, name="calibration_fitter")(fit_served_outcomes)
