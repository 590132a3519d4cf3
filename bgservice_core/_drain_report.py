"""What a drain reports, and what a crash reported by a running service does."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Mapping

from bgservice_core._errors import ExitCode


class CrashPolicy(enum.Enum):
    """What the runner does when a running service reports a crash."""

    #: Log the crash and keep the other services running.
    REPORT = "report"
    #: Log the crash and request a shutdown, so the supervisor restarts the process.
    SHUTDOWN = "shutdown"


@dataclasses.dataclass(frozen=True)
class DrainReport:
    """The outcome of :meth:`ServiceRunner.drain`.

    :param stopped: services whose ``stop()`` returned, in the order they did.
    :param failed: services whose ``stop()`` raised, with the exception.
    :param still_draining: services whose ``stop()`` had not returned in time.
    :param crashed: services that reported a crash while running.
    :param crash_policy: the runner's policy; under ``REPORT`` a crash was only
        logged, so it does not make the exit code a failure.
    """

    stopped: tuple[str, ...] = ()
    failed: Mapping[str, BaseException] = dataclasses.field(default_factory=dict)
    still_draining: tuple[str, ...] = ()
    crashed: Mapping[str, BaseException] = dataclasses.field(default_factory=dict)
    crash_policy: CrashPolicy = CrashPolicy.SHUTDOWN

    @property
    def exit_code(self) -> ExitCode:
        """The exit code that ``bgservice run`` gives for this outcome."""
        if self.still_draining:
            return ExitCode.DRAIN_TIMEOUT
        if self.failed:
            return ExitCode.DRAIN_ERROR
        if self.crashed and self.crash_policy is CrashPolicy.SHUTDOWN:
            return ExitCode.SERVICE_CRASHED
        return ExitCode.OK

    def summary(self) -> str:
        """Describe the outcome in one line."""
        outcomes = [
            ("stopped", self.stopped),
            ("failed", self.failed),
            ("still draining", self.still_draining),
        ]
        parts = [f"{label} {len(got)}: {names_or_none(got)}" for label, got in outcomes]
        if self.crashed:
            parts.append(f"crashed while running: {names_or_none(self.crashed)}")
        return "drain finished; " + "; ".join(parts)


def names_or_none(names: Iterable[str]) -> str:
    """Join ``names`` with commas, or say ``none``."""
    listed = ", ".join(names)
    return listed or "none"
