"""Test doubles of a chassis: a Gate that records its calls, a crash recorder.

Both are safe to call from a service's own threads, and both wait with a time
bound for what those threads do.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

#: How :meth:`RecordingGate.transitions` names a tenant's two states.
SUSPENDED = "suspended"
ADMITTED = "admitted"


@dataclasses.dataclass(frozen=True)
class GateCall:
    """One call of :meth:`RecordingGate.set_gate`, with its arguments."""

    slug: str
    suspended: bool
    deny_status: int
    deny_reason: str

    @property
    def state(self) -> str:
        """``"suspended"`` or ``"admitted"``."""
        return SUSPENDED if self.suspended else ADMITTED


class RecordingGate:
    """A :class:`~bgservice_core.Gate` that records the calls of any thread.

    :param fail_with: an exception each call raises after it is recorded, to
        test how a service copes with a chassis that cannot change a gate.
    """

    def __init__(self, *, fail_with: BaseException | None = None) -> None:
        self.fail_with = fail_with
        self._calls: list[GateCall] = []
        self._changed = threading.Condition()

    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        """Record the call, then raise ``fail_with`` if it is set."""
        with self._changed:
            self._calls.append(GateCall(slug, suspended, deny_status, deny_reason))
            self._changed.notify_all()
        if self.fail_with is not None:
            raise self.fail_with

    @property
    def calls(self) -> tuple[GateCall, ...]:
        """Every call so far, in the order they were made."""
        with self._changed:
            return tuple(self._calls)

    def calls_for(self, slug: str) -> list[GateCall]:
        """The calls for tenant ``slug``, in order."""
        return [call for call in self.calls if call.slug == slug]

    def latest(self, slug: str) -> GateCall | None:
        """The last call for ``slug``, or ``None`` if there was none."""
        calls = self.calls_for(slug)
        return calls[-1] if calls else None

    def suspended_slugs(self) -> list[str]:
        """The tenants whose last call suspended them, sorted."""
        latest = {call.slug: call for call in self.calls}
        return sorted(slug for slug, call in latest.items() if call.suspended)

    def transitions(self, slug: str) -> list[str]:
        """The states ``slug`` went through, with repeats collapsed.

        A service that suspends a tenant on every tick makes one transition,
        not one per tick: ``["suspended"]``, then ``["suspended", "admitted"]``
        once it readmits the tenant.
        """
        states: list[str] = []
        for call in self.calls_for(slug):
            if not states or states[-1] != call.state:
                states.append(call.state)
        return states

    def clear(self) -> None:
        """Forget the calls recorded so far."""
        with self._changed:
            self._calls.clear()

    def wait_for_calls(self, count: int, timeout: float = 5.0) -> tuple[GateCall, ...]:
        """Wait until at least ``count`` calls were made, and return them all.

        :raises AssertionError: fewer calls arrived within ``timeout`` seconds.
        """
        with self._changed:
            arrived = self._changed.wait_for(
                lambda: len(self._calls) >= count, timeout=timeout
            )
            calls = tuple(self._calls)
        if not arrived:
            raise AssertionError(
                f"expected at least {count} gate call(s) within {timeout:g}s, "
                f"got {len(calls)}: {_listed(calls)}"
            )
        return calls

    def assert_transitions(self, slug: str, *expected: str) -> None:
        """Check that ``slug`` went through exactly the states ``expected``.

        :raises AssertionError: it did not; the message lists its calls.
        """
        actual = self.transitions(slug)
        if actual != list(expected):
            raise AssertionError(
                f"tenant {slug!r} went through {actual}, expected {list(expected)}; "
                f"its gate calls: {_listed(self.calls_for(slug))}"
            )

    def assert_suspended(
        self,
        slug: str,
        *,
        deny_status: int | None = None,
        deny_reason: str | None = None,
    ) -> None:
        """Check that the last call for ``slug`` suspended it, as described.

        :raises AssertionError: it did not.
        """
        call = self._latest_or_fail(slug, SUSPENDED)
        wrong = [
            f"{field}={getattr(call, field)!r} (expected {wanted!r})"
            for field, wanted in (
                ("deny_status", deny_status),
                ("deny_reason", deny_reason),
            )
            if wanted is not None and getattr(call, field) != wanted
        ]
        if not call.suspended or wrong:
            found = "admitted" if not call.suspended else ", ".join(wrong)
            raise AssertionError(
                f"tenant {slug!r} is not suspended as expected: {found}; "
                f"its last gate call: {_listed([call])}"
            )

    def assert_admitted(self, slug: str) -> None:
        """Check that the last call for ``slug`` readmitted it.

        :raises AssertionError: it did not.
        """
        call = self._latest_or_fail(slug, ADMITTED)
        if call.suspended:
            raise AssertionError(
                f"tenant {slug!r} is suspended, expected admitted; "
                f"its last gate call: {_listed([call])}"
            )

    def assert_no_calls(self) -> None:
        """Check that the gate was never called.

        :raises AssertionError: it was.
        """
        calls = self.calls
        if calls:
            raise AssertionError(f"expected no gate calls, got {_listed(calls)}")

    def _latest_or_fail(self, slug: str, expected: str) -> GateCall:
        call = self.latest(slug)
        if call is None:
            others = sorted({c.slug for c in self.calls})
            raise AssertionError(
                f"tenant {slug!r} was never gated, expected {expected}; "
                f"tenants gated: {', '.join(others) or 'none'}"
            )
        return call


class CrashRecorder:
    """A failure handler that remembers the crashes services report.

    Pass it as :class:`~bgservice_core.Config`'s ``failure_handler``; a service
    reports a crash through :meth:`~bgservice_core.Config.report_failure`.
    """

    def __init__(self) -> None:
        self._crashes: list[tuple[str, BaseException]] = []
        self._changed = threading.Condition()

    def __call__(self, backend: str, error: BaseException) -> None:
        """Record that ``backend``'s loop died with ``error``."""
        with self._changed:
            self._crashes.append((backend, error))
            self._changed.notify_all()

    @property
    def crashes(self) -> tuple[tuple[str, BaseException], ...]:
        """Every crash reported so far, as (backend, error), in order."""
        with self._changed:
            return tuple(self._crashes)

    def wait_for_crash(self, timeout: float = 5.0) -> tuple[str, BaseException]:
        """Wait for the first crash and return it.

        :raises AssertionError: none was reported within ``timeout`` seconds.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: bool(self._crashes), timeout):
                raise AssertionError(f"no crash was reported within {timeout:g}s")
            return self._crashes[0]

    def assert_no_crash(self) -> None:
        """Check that no service reported a crash.

        :raises AssertionError: one did; the first crash is chained.
        """
        crashes = self.crashes
        if crashes:
            backend, error = crashes[0]
            raise AssertionError(
                f"service {backend!r} reported a crash: {type(error).__name__}: {error}"
            ) from error


def _listed(calls: Sequence[GateCall]) -> str:
    if not calls:
        return "none"
    return ", ".join(
        f"set_gate({c.slug!r}, {c.suspended}, {c.deny_status}, {c.deny_reason!r})"
        for c in calls
    )
