"""When what failed may be tried again: after a capped exponential delay."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import tenacity


@dataclasses.dataclass
class _Failing:
    attempts: tenacity.RetryCallState
    retry_at: float


class RetrySchedule:
    """Track failing keys (tenants, or the databases) and their next try.

    The n-th consecutive failure of a key puts off its next try by
    ``first_delay * 2 ** (n - 1)`` seconds, never more than ``max_delay``. The
    delays come from tenacity's wait strategy; the retries themselves are left
    to later ticks, so that one failing key never holds up the others.

    :param first_delay: seconds before the first retry.
    :param max_delay: the longest delay.
    :param clock: returns seconds; monotonic by default.
    """

    def __init__(
        self,
        first_delay: float,
        max_delay: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wait = tenacity.wait_exponential(
            multiplier=first_delay,
            max=max_delay,
        )
        self._clock = clock
        self._failing: dict[str, _Failing] = {}

    def due(self, key: str) -> bool:
        """Whether ``key`` may be tried now."""
        failing = self._failing.get(key)
        return failing is None or self._clock() >= failing.retry_at

    def failed(self, key: str) -> float:
        """Note a failure of ``key``; return the seconds until its next try."""
        failing = self._failing.get(key)
        if failing is None:
            # Only attempt_number is read: the wait strategy's whole input.
            retrying = tenacity.Retrying()
            attempts = tenacity.RetryCallState(retrying, None, (), {})
            failing = self._failing[key] = _Failing(attempts, 0.0)
        else:
            failing.attempts.attempt_number += 1

        delay = self._wait(failing.attempts)
        failing.retry_at = self._clock() + delay
        return delay

    def succeeded(self, key: str) -> int:
        """Forget ``key``'s failures; return how many there were in a row."""
        failing = self._failing.pop(key, None)
        return 0 if failing is None else failing.attempts.attempt_number

    def failing(self) -> list[str]:
        """Return the keys failing now, sorted."""
        return sorted(self._failing)
