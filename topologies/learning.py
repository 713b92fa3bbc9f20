"""Leader-only upkeep of the online learning: the calibration fit and the bandit's discount.

- Calibration: every tick, learn from the ranked items whose label window
  (`HOMEMIXER_CALIBRATION_LABEL_S`) has passed: the raw predictions each was served with against
  what its viewer did (`streams.ranked.served_outcomes`), one Platt fit per segment and kind, which every
  ranked read then scores with. With learning frozen the items are only forgotten.
- Bandit: once a minute, fade the arms' counts by the time since the last fade
  (`streams.mixer.adaptation`, `BANDIT_HALF_LIFE_MS`); not while learning is frozen.
"""

from __future__ import annotations

import logging
import time

from streams.app import app, redis_client, settings, tolerating_redis_outages
from streams.ranked.bandit_store import discount_bandit
from streams.ranked.served_outcomes import fit_calibration

log = logging.getLogger(__name__)

# A tick every quarter label window (at most 30 s): an item waits at most 1.25 windows.
FIT_INTERVAL_S = min(30.0, max(0.5, settings.calibration_label_s / 4))
DISCOUNT_INTERVAL_S = 60.0


def _now_ms() -> int:
    return int(time.time() * 1000)


async def fit_served_outcomes() -> None:
    learn = not settings.freeze_learning
    fitted = await fit_calibration(redis_client(), _now_ms(), settings.calibration_label_s * 1000, learn)
    if fitted.taken:
        log.info(
            "calibration: learnt from %d served items, %d not learnt (unseen or frozen), %d records lost",
            fitted.learnt,
            fitted.not_learnt,
            fitted.lost,
        )


async def fade_bandit() -> None:
    # Frozen buckets serve the best arm by its counts: fading the arms not served would lift
    # them back toward the prior, and the "best" would change while frozen.
    if not settings.freeze_learning:
        await discount_bandit(redis_client(), _now_ms())


app.timer(FIT_INTERVAL_S, on_leader=True, name="calibration_fitter")(
    tolerating_redis_outages(fit_served_outcomes)
)
app.timer(DISCOUNT_INTERVAL_S, on_leader=True, name="bandit_discount")(tolerating_redis_outages(fade_bandit))
