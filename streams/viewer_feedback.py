"""The viewer-feedback learner's state in Redis (`streams.mixer.feedback` is its math).

One hash per viewer, `hm:fb:<user>`: `<author>.e` and `<author>.x` (engaged and expected seen
served tweets of that author), `viewer.e` and `viewer.x` (the same over every author), and `ts`,
the time they are faded to. The calibration fitter learns into it (`queue_learning`, inside its
MULTI: a crash or a racing fitter learns each served item exactly once, with the calibration);
the ranked hydration reads the fields of a request's authors (`lift_fields`, `decode_lifts`;
the hydration script builds the same names itself, and tests/integration/test_hydration.py reads
through it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

from redis.asyncio.client import Pipeline

from streams.mixer.feedback import FEEDBACK_HALF_LIFE_MS, VIEWER, Evidence, fade_factor, feedback_lift
from streams.redis_keys import feedback_key

TS: Final = "ts"
# An author's sums are dropped once faded below this (~5 half-lives after the viewer's last look
# at one tweet): they no longer move its lift, and the hash stays as small as the viewer's reading.
NEGLIGIBLE: Final = 1e-3
# A viewer gone this long has no feedback worth keeping (10 half-lives: 1/1000 of it left).
KEEP_MS: Final = int(10 * FEEDBACK_HALF_LIFE_MS)


def _fields(key: str | int) -> tuple[str, str]:
    return f"{key}.e", f"{key}.x"


# Fades every sum to now, adds the increments, drops the negligible sums. An increment older than
# the stored `ts` (a fitter's clock behind another's) is added without fading.
#   ARGV: key, now ms, half-life ms, lifetime ms, negligible, then field, increment pairs.
LEARN = """
local key, now = ARGV[1], tonumber(ARGV[2])
local ts = tonumber(redis.call('HGET', key, 'ts') or '')
local factor = 1
if ts and now > ts then factor = math.exp(-(now - ts) * math.log(2) / tonumber(ARGV[3])) end
local values = {}
local all = redis.call('HGETALL', key)
for i = 1, #all, 2 do
  if all[i] ~= 'ts' then values[all[i]] = tonumber(all[i + 1]) * factor end
end
for i = 6, #ARGV, 2 do
  values[ARGV[i]] = (values[ARGV[i]] or 0) + tonumber(ARGV[i + 1])
end
for field, v in pairs(values) do
  if v < tonumber(ARGV[5]) then
    redis.call('HDEL', key, field)
  else
    redis.call('HSET', key, field, string.format('%.17g', v))
  end
end
redis.call('HSET', key, 'ts', math.max(now, ts or now))
redis.call('PEXPIRE', key, ARGV[4])
"""


def queue_learning(pipe: Pipeline, user_id: int, now_ms: int, seen: Mapping[int, Evidence]) -> None:
    """Queue in `pipe` the viewer's newly seen served tweets, summed per author (`LEARN`)."""
    if not seen:
        return
    total = sum(seen.values(), Evidence())
    increments: list[str | float] = []
    sums: list[tuple[str | int, Evidence]] = [*seen.items(), (VIEWER, total)]
    for key, e in sums:
        engaged, expected = _fields(key)
        increments += [engaged, e.engaged, expected, e.expected]
    pipe.eval(
        LEARN, 0, feedback_key(user_id), now_ms, FEEDBACK_HALF_LIFE_MS, KEEP_MS, NEGLIGIBLE, *increments
    )


def lift_fields(authors: Sequence[str | int]) -> list[str]:
    """The fields a request reads, in the order `decode_lifts` takes their values."""
    return [TS, *_fields(VIEWER), *(f for a in authors for f in _fields(a))]


def decode_lifts(
    values: Sequence[bytes | None], authors: Sequence[int], now_ms: int | None
) -> dict[int, float]:
    """The authors' lifts from the values of `lift_fields(authors)`, the sums faded to `now_ms`
    (None: not faded, learning is frozen); authors with no feedback are left out (their lift is 1)."""
    if not values or values[0] is None:
        return {}
    factor = 1.0 if now_ms is None else fade_factor(now_ms - float(values[0]))

    def evidence(engaged: bytes | None, expected: bytes | None) -> Evidence:
        return Evidence(float(engaged or 0.0), float(expected or 0.0)).faded(factor)

    viewer = evidence(values[1], values[2])
    lifts = {}
    for k, author in enumerate(authors):
        engaged, expected = values[3 + 2 * k], values[4 + 2 * k]
        if engaged is not None or expected is not None:
            lift = feedback_lift(evidence(engaged, expected), viewer)
            if math.isfinite(lift):
                lifts[author] = lift
    return lifts
