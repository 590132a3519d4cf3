"""The contract between a chassis and a background service backend.

A chassis hands each backend a :class:`Config`; the backend returns a
:class:`Service`. The only way a service changes chassis state is the
:class:`Gate`, which keeps the seam free of any one business's vocabulary: the
meaning of a suspension travels in the deny reason the service chooses.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Protocol, TypeAlias, runtime_checkable

#: Called with the backend name and the exception when a service's loop dies.
FailureHandler: TypeAlias = Callable[[str, BaseException], None]


@runtime_checkable
class Service(Protocol):
    """A long-running background loop owned by the chassis."""

    def start(self) -> None:
        """Launch the loop and return at once; the work happens elsewhere."""

    def stop(self) -> None:
        """Ask the loop to finish and return once it has.

        Calling it twice, or before :meth:`start`, must be harmless.
        """


@runtime_checkable
class Gate(Protocol):
    """Engages or releases a tenant's programmatic admission gate."""

    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        """Suspend (``suspended=True``) or readmit the tenant named ``slug``.

        :param slug: the tenant's stable identifier.
        :param suspended: whether requests for the tenant are to be denied.
        :param deny_status: the HTTP status a denied request gets (400-599).
        :param deny_reason: a machine-readable reason, e.g. ``credit_exhausted``.
        """


@dataclasses.dataclass(frozen=True)
class Config:
    """What a chassis hands to a backend's constructor.

    :param logger: the logger the service writes to. :func:`bgservice_core.open`
        replaces it with a child named after the backend.
    :param gate: the chassis' admission gate.
    :param node_id: a stable identity of this chassis node, FQDN-like.
    :param backend_name: the backend this configuration was built for; set by
        :func:`bgservice_core.open`.
    :param failure_handler: where :meth:`report_failure` sends a crash; the
        lifecycle runner installs one. Without it crashes are logged.
    """

    logger: logging.Logger
    gate: Gate
    node_id: str
    backend_name: str = ""
    failure_handler: FailureHandler | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    def for_backend(self, name: str) -> Config:
        """Return a copy for backend ``name``, with a logger named after it."""
        return dataclasses.replace(
            self, logger=self.logger.getChild(name), backend_name=name
        )

    def report_failure(self, error: BaseException) -> None:
        """Tell the chassis that this service's loop died with ``error``.

        A service calls this from its own thread; it never raises.
        """
        if self.failure_handler is not None:
            self.failure_handler(self.backend_name, error)
            return
        self.logger.error(
            "service %r crashed while running",
            self.backend_name,
            exc_info=(type(error), error, error.__traceback__),
        )


#: Builds a service from the chassis' configuration.
Constructor: TypeAlias = Callable[[Config], Service]
