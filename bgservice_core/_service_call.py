"""One ``start()`` or ``stop()`` call in a daemon thread, and the timeouts it takes.

A call that hangs can then be named and abandoned instead of hanging the chassis.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

#: How often a waiting loop wakes to look for ServiceRunner.request_shutdown().
POLL_SECONDS = 0.05

#: The longest timeout a runner accepts, one week: a longer one is a mistake,
#: and math.inf or nan would silently disable the deadline.
MAX_TIMEOUT = 7 * 24 * 3600.0


class ServiceCall:
    """One ``start()`` or ``stop()`` call, run in a daemon thread of its own."""

    def __init__(
        self,
        verb: str,
        name: str,
        method: Callable[[], object],
        on_done: Callable[[ServiceCall], None],
    ) -> None:
        self.name = name
        self.error: BaseException | None = None
        self.duration = 0.0
        self._method = method
        self._on_done = on_done
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"bgservice-{verb}-{name}", daemon=True
        )
        self._started_at = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        try:
            self._method()
        except BaseException as err:  # noqa: BLE001 - handed to the waiting thread
            self.error = err
        finally:
            self.duration = time.monotonic() - self._started_at
            self._on_done(self)
            self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None) -> bool:
        """Wait for the call to finish, for ever when ``timeout`` is None."""
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        # Short slices: a signal arriving just before the main thread blocks is
        # handled only when the wait ends, so one long wait would delay Ctrl-C.
        # An event, not join(timeout): a KeyboardInterrupt landing in join()
        # makes CPython 3.11 mark a thread that is still running as finished.
        while not self._done.wait(wait_slice(deadline)):
            if time.monotonic() >= deadline:
                return False
        self._thread.join()  # only its last instructions are left
        return True


def check_seconds(parameter: str, value: object) -> float:
    """Return ``value`` as seconds if it is a usable timeout, or raise.

    :raises TypeError: it is not an int or a float, or it is a bool.
    :raises ValueError: it is nan or infinite, or not in (0, MAX_TIMEOUT].
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(
            f"{parameter} must be a number of seconds, not "
            f"{type(value).__name__} {value!r}"
        )
    if not (math.isfinite(value) and 0 < value <= MAX_TIMEOUT):
        raise ValueError(
            f"{parameter} must be a finite number of seconds greater than 0 and "
            f"at most {MAX_TIMEOUT:g} (one week); got {value!r}"
        )
    return float(value)


def wait_slice(deadline: float) -> float:
    """Return how long to wait next: a short slice, none past ``deadline``."""
    return max(0.0, min(POLL_SECONDS, deadline - time.monotonic()))
