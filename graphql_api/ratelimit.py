"""Per-user rate limits on writes (sendMessage, createConversation, uploads).

A token bucket per user and action, in this process: with `--workers N` a user gets at most N
times the limit, which still stops floods; a shared limit would cost a database round-trip per
write. Limits hold for operations sent over WebSocket too, since they apply in the services.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from graphql_api.errors import RateLimited

MAX_TRACKED_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class Rate:
    per_minute: float
    burst: int


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float = field(default_factory=time.monotonic)


class RateLimiter:
    def __init__(self, rates: dict[str, Rate], enabled: bool = True) -> None:
        self.rates = rates
        self.enabled = enabled
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def retry_after(self, user_id: str, action: str) -> float:
        """0 when the action may go ahead now (and counts it), else seconds to wait."""
        rate = self.rates.get(action)
        if not self.enabled or rate is None:
            return 0.0
        now = time.monotonic()
        key = (user_id, action)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_TRACKED_KEYS:
                self._buckets.clear()  # bounded memory; full buckets are the default anyway
            bucket = self._buckets[key] = _Bucket(tokens=rate.burst, updated=now)
        per_second = rate.per_minute / 60
        bucket.tokens = min(rate.burst, bucket.tokens + (now - bucket.updated) * per_second)
        bucket.updated = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / per_second

    def check(self, user_id: str, action: str, what: str) -> None:
        """Raise RATE_LIMITED (with `retryAfter` seconds) when the user must slow down."""
        wait = self.retry_after(user_id, action)
        if wait > 0:
            seconds = max(math.ceil(wait), 1)
            raise RateLimited(f"too many {what}: try again in {seconds} s", retryAfter=seconds)
