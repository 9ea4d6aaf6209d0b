"""The one exponential back-off every retry uses (the ingest client, the collector, the realtime
subscriber, later the alert notifier)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass
class Backoff:
    """Delay before retry number `attempt` (0-based): `base_s * 2**attempt`, capped at `cap_s`;
    with `jitter`, a uniform draw from the upper half of it (so retrying clients spread out)."""

    base_s: float
    cap_s: float
    jitter: bool = False
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry `attempt`."""
        delay_s = min(self.cap_s, self.base_s * 2 ** min(max(attempt, 0), 62))
        return delay_s / 2 + self.rng.uniform(0, delay_s / 2) if self.jitter else delay_s
