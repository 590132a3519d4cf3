"""Every error bgservice raises, and the process exit code each one maps to.

The messages are written for the operator who must fix a configuration string or
an installation, so each one quotes the offending value and says what to do. Each
error keeps its inputs as attributes so that a chassis can react to them without
parsing the text.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bgservice_core._discovery import BackendEntry

ENTRY_POINT_GROUP = "bgservice.backends"

#: How a backend registered with ``register()`` (not installed) is described.
REGISTERED_IN_PROCESS = "(registered in-process)"


class ExitCode(enum.IntEnum):
    """The exit codes of ``bgservice run``, one per kind of failure."""

    OK = 0
    #: An unexpected error inside bgservice itself (a bug: please report it).
    INTERNAL_ERROR = 1
    #: The command line was malformed (click's own usage errors).
    USAGE_ERROR = 2
    #: The configuration is unusable: an unknown, conflicting or repeated
    #: backend name, or a ``--db`` that cannot be used.
    CONFIG_ERROR = 3
    #: A selected backend failed to import, validate or construct its service.
    LOAD_ERROR = 4
    #: A service failed to start (it raised or did not return in time).
    START_ERROR = 5
    #: A service did not stop within the drain timeout.
    DRAIN_TIMEOUT = 6
    #: Every service stopped in time, but at least one ``stop()`` raised.
    DRAIN_ERROR = 7
    #: A running service reported a crash and the policy shut the chassis down.
    SERVICE_CRASHED = 8
    #: A second SIGINT or SIGTERM arrived while draining: exited at once.
    FORCED_EXIT = 9


class BGServiceError(Exception):
    """The base of every error bgservice raises."""

    exit_code: ExitCode = ExitCode.INTERNAL_ERROR


class InvalidBackendListError(BGServiceError, ValueError):
    """The comma-separated backend list itself is malformed.

    :param text: the list as the operator wrote it.
    :param repeated: the names that appear more than once.
    """

    exit_code = ExitCode.CONFIG_ERROR

    def __init__(self, text: str, repeated: Sequence[str]) -> None:
        self.text = text
        self.repeated = tuple(repeated)
        listed = ", ".join(repr(name) for name in self.repeated)
        super().__init__(
            f"backend list {text!r} names {listed} more than once; "
            "each backend runs at most once per process, so list it once"
        )


class UnknownBackendError(BGServiceError, LookupError):
    """One or more names in the backend list match no installed backend.

    :param names: every unknown name, in the order they were listed.
    :param available: the names that could have been chosen, sorted.
    :param suggestions: for each unknown name, the close matches found.
    """

    exit_code = ExitCode.CONFIG_ERROR

    def __init__(
        self,
        names: Sequence[str],
        available: Iterable[str],
        suggestions: dict[str, list[str]] | None = None,
    ) -> None:
        self.names = tuple(names)
        self.available = tuple(sorted(available))
        self.suggestions = dict(suggestions or {})
        super().__init__(self._describe())

    def _describe(self) -> str:
        noun = "backend" if len(self.names) == 1 else "backends"
        lines = [f"unknown {noun} in the background service list:"]
        for name in self.names:
            close = self.suggestions.get(name)
            hint = f" (did you mean {_quoted_or(close)}?)" if close else ""
            lines.append(f"  {name!r}{hint}")

        if self.available:
            lines.append(f"available backends: {', '.join(self.available)}")
        else:
            lines.append(
                f"no backends are installed in the entry-point group "
                f"{ENTRY_POINT_GROUP!r}: install a backend distribution, or "
                "remove these names from the list"
            )
        return "\n".join(lines)


class BackendConflictError(BGServiceError):
    """Two sources offer the same backend name, so the choice would be a guess.

    :param name: the contested backend name.
    :param claimants: a description of each source, sorted for a stable message.
    """

    exit_code = ExitCode.CONFIG_ERROR

    def __init__(self, name: str, claimants: Iterable[str]) -> None:
        self.name = name
        self.claimants = tuple(sorted(claimants))
        listed = "\n".join(f"  {claimant}" for claimant in self.claimants)
        super().__init__(
            f"backend name {name!r} is provided more than once:\n{listed}\n"
            + _conflict_advice(self.claimants)
        )


class BackendLoadError(BGServiceError, ImportError):
    """A selected backend could not be imported or failed hook validation.

    The original exception is chained as ``__cause__``, so its traceback shows
    the file and line that failed.

    :param entry: the backend as discovered (name, distribution, entry point).
    :param reason: what went wrong, in one line.
    """

    exit_code = ExitCode.LOAD_ERROR

    def __init__(self, entry: BackendEntry, reason: str) -> None:
        self.entry = entry
        self.reason = reason
        super().__init__(f"cannot load backend {entry.describe()}: {reason}")


class ServiceConstructionError(BGServiceError):
    """A backend's constructor raised, or returned something that is no service.

    :param backend: the backend name.
    :param reason: what went wrong, in one line.
    """

    exit_code = ExitCode.LOAD_ERROR

    def __init__(self, backend: str, reason: str) -> None:
        self.backend = backend
        self.reason = reason
        super().__init__(f"backend {backend!r} could not build its service: {reason}")


class ServiceStartError(BGServiceError):
    """A service's ``start()`` raised or did not return within the start timeout.

    :param backend: the backend whose start failed.
    :param reason: what went wrong, in one line.
    :param rolled_back: the backends stopped again because of it, in stop order.
    """

    exit_code = ExitCode.START_ERROR

    def __init__(self, backend: str, reason: str, rolled_back: Sequence[str]) -> None:
        self.backend = backend
        self.reason = reason
        self.rolled_back = tuple(rolled_back)
        undone = ", ".join(self.rolled_back) or "none"
        super().__init__(
            f"service {backend!r} failed to start: {reason}; "
            f"stopped again the services already started: {undone}"
        )


class ServiceCrashedError(BGServiceError):
    """A running service's background loop died with an exception.

    :param backend: the backend whose loop died.
    """

    exit_code = ExitCode.SERVICE_CRASHED

    def __init__(self, backend: str) -> None:
        self.backend = backend
        super().__init__(f"service {backend!r} crashed while running")


class SettingError(BGServiceError, ValueError):
    """A backend's environment setting is missing or malformed.

    :param variable: the environment variable's name.
    :param value: the value found (never a secret: callers redact first).
    :param expected: what a valid value looks like.
    """

    exit_code = ExitCode.LOAD_ERROR

    def __init__(self, variable: str, value: str, expected: str) -> None:
        self.variable = variable
        self.value = value
        self.expected = expected
        super().__init__(f"{variable}={value!r} is invalid: expected {expected}")


def _conflict_advice(claimants: Sequence[str]) -> str:
    # Uninstalling cannot remove an in-process registration, so say what can.
    if any(claimant.startswith(REGISTERED_IN_PROCESS) for claimant in claimants):
        return (
            "register the in-process constructor under another name, or remove "
            "the other provider (bgservice_core.unregister() for an in-process "
            "one, uninstalling for a distribution)"
        )
    return (
        "uninstall all but one of these distributions, or rename one of the "
        "entry points"
    )


def _quoted_or(names: Sequence[str]) -> str:
    quoted = [repr(name) for name in names]
    if len(quoted) == 1:
        return quoted[0]
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]
