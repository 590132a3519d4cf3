"""Helpers for testing a backend, and a conformance check any backend can run.

Everything here is also offered as pytest fixtures by the plugin that
``bgservice-core`` registers (``bgservice_gate``, ``bgservice_crashes``,
``bgservice_config``, ``bgservice_backend``, ``bgservice_conformance``), so a
backend's tests need no imports to use them::

    def test_conformance(bgservice_conformance):
        bgservice_conformance(
            "heartbeat", bad_settings=[{"BGSERVICE_HEARTBEAT_PERIOD": "abc"}]
        )

The helpers time out instead of hanging, with bounds of seconds: on a loaded
machine a prompt ``stop()`` may take a while, but one that never returns is a
bug.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Protocol

from bgservice_core._conformance import (
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_RUN_FOR,
    DEFAULT_START_TIMEOUT,
    CheckResult,
    ConformanceError,
    ConformanceReport,
    Status,
    bounded_call,
    patched_environment,
)
from bgservice_core._conformance import check_conformance as _check_conformance
from bgservice_core._contract import Config, FailureHandler, Gate, Service
from bgservice_core._opening import build_service, load_constructor, resolve_backends
from bgservice_core._recording import (
    ADMITTED,
    SUSPENDED,
    CrashRecorder,
    GateCall,
    RecordingGate,
)

__all__ = [
    "ADMITTED",
    "DEFAULT_DRAIN_TIMEOUT",
    "DEFAULT_NODE_ID",
    "DEFAULT_RUN_FOR",
    "DEFAULT_START_TIMEOUT",
    "SUSPENDED",
    "BackendHarness",
    "CheckResult",
    "ConformanceCheck",
    "ConformanceError",
    "ConformanceReport",
    "CrashRecorder",
    "GateCall",
    "RecordingGate",
    "Status",
    "check_conformance",
    "make_config",
    "patched_environment",
    "postgres_test_database",
    "wait_until",
]

#: The node id :func:`make_config` gives when none is asked for.
DEFAULT_NODE_ID = "node-1.test.example"


def make_config(
    *,
    gate: Gate | None = None,
    node_id: str = DEFAULT_NODE_ID,
    logger: logging.Logger | None = None,
    failure_handler: FailureHandler | None = None,
) -> Config:
    """Return a :class:`~bgservice_core.Config` ready for a test.

    :param gate: defaults to a new :class:`RecordingGate`.
    :param node_id: the chassis node's identity.
    :param logger: defaults to the logger ``bgservice.test``.
    :param failure_handler: where crashes go; e.g. a :class:`CrashRecorder`.
    """
    return Config(
        logger=logger or logging.getLogger("bgservice.test"),
        gate=gate if gate is not None else RecordingGate(),
        node_id=node_id,
        failure_handler=failure_handler,
    )


def wait_until(
    condition: Callable[[], object], timeout: float = 5.0, *, interval: float = 0.01
) -> None:
    """Wait until ``condition()`` is true: for what a service's thread does.

    :raises AssertionError: it was still false after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            name = getattr(condition, "__qualname__", repr(condition))
            raise AssertionError(f"{name} was still false after {timeout:g}s")
        time.sleep(interval)


class BackendHarness:
    """Builds backends through their installed entry points and stops them all.

    Use it as a context manager (or the ``bgservice_backend`` fixture): on exit
    every service it built is stopped, and the exit fails if one does not stop
    within ``drain_timeout`` seconds or its ``stop()`` raises.

    :param config: the configuration services get; defaults to
        :func:`make_config`.
    :param drain_timeout: seconds all the stops together may take.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    ) -> None:
        self.config = config if config is not None else make_config()
        self.drain_timeout = drain_timeout
        self._services: list[tuple[str, Service]] = []

    def __call__(self, name: str, config: Config | None = None) -> Service:
        """Build backend ``name``; the same as :meth:`build`."""
        return self.build(name, config)

    def build(self, name: str, config: Config | None = None) -> Service:
        """Build backend ``name`` as ``bgservice run`` does, but do not start it.

        The backend's settings are read now, from the environment as it is.

        :raises AssertionError: ``name`` is only registered in-process.
        :raises bgservice_core.BGServiceError: as :func:`bgservice_core.open`.
        """
        entry = resolve_backends([name])[0]
        if not entry.installed:
            raise AssertionError(
                f"backend {name!r} is registered in-process, not installed: "
                "install its distribution (pip install -e .) so its entry "
                "point is used"
            )
        constructor = load_constructor(entry)
        service = build_service(name, constructor, config or self.config)
        self._services.append((name, service))
        return service

    def close(self) -> None:
        """Stop every service built, newest first, each once.

        :raises AssertionError: a service did not stop in time, or its
            ``stop()`` raised; the others were stopped all the same.
        """
        deadline = time.monotonic() + self.drain_timeout
        services, self._services = self._services[::-1], []
        problems: list[str] = []
        first_error: BaseException | None = None
        for name, service in services:
            outcome = bounded_call(service.stop, deadline - time.monotonic(), name)
            if not outcome.returned:
                problems.append(
                    f"service {name!r} did not stop within {self.drain_timeout:g}s"
                )
            elif outcome.error is not None:
                problems.append(f"service {name!r}: stop() raised {outcome.describe()}")
                first_error = first_error or outcome.error
        if problems:
            raise AssertionError("; ".join(problems)) from first_error

    def __enter__(self) -> BackendHarness:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def check_conformance(
    name: str,
    *,
    bad_settings: Sequence[Mapping[str, str | None]] = (),
    environment: Mapping[str, str | None] | None = None,
    config: Config | None = None,
    start_timeout: float = DEFAULT_START_TIMEOUT,
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
    run_for: float = DEFAULT_RUN_FOR,
) -> ConformanceReport:
    """Check that installed backend ``name`` keeps the service contract.

    In order: its entry point resolves and imports; its hook validates; each
    mapping in ``bad_settings`` makes construction fail with an error that
    names the variable and quotes the value; ``stop()`` before ``start()``
    returns; a service builds with the settings as they are; ``start()``
    returns within ``start_timeout``; after ``run_for`` seconds ``stop()``
    returns within ``drain_timeout``, and so does a second ``stop()``; no crash
    was reported; and no thread the service started is still alive.

    :param name: the backend name, as its entry point spells it.
    :param bad_settings: environment values construction must reject, one
        mapping per attempt; ``None`` unsets a variable, to try a missing one.
    :param environment: values set (``None``: unset) for the whole check, e.g.
        a database path in a temporary directory.
    :param config: the configuration services get; defaults to
        :func:`make_config`. Crashes are collected whatever its handler.
    :returns: the report, when every check passed.
    :raises ConformanceError: a check failed; the message lists every check.
    """
    return _check_conformance(
        name,
        config if config is not None else make_config(),
        bad_settings=bad_settings,
        environment=environment,
        start_timeout=start_timeout,
        drain_timeout=drain_timeout,
        run_for=run_for,
    )


class ConformanceCheck(Protocol):
    """The type of the ``bgservice_conformance`` fixture."""

    def __call__(
        self,
        name: str,
        *,
        bad_settings: Sequence[Mapping[str, str | None]] = (),
        environment: Mapping[str, str | None] | None = None,
        config: Config | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        run_for: float = DEFAULT_RUN_FOR,
    ) -> ConformanceReport:
        """Run the check; see :func:`check_conformance`."""


@contextlib.contextmanager
def postgres_test_database(
    server: str, prefix: str = "bgservice_test"
) -> Iterator[str]:
    """Create an empty database on ``server`` and drop it afterwards.

    Needs psycopg (``bgservice-core[postgres]``), imported only here.

    :param server: a ``postgresql://`` URL of a role that may create databases.
    :param prefix: the start of the database's name; a random suffix follows.
    :returns: the URL of the new database, the same as ``server`` but its path.
    """
    import urllib.parse
    import uuid

    import psycopg
    from psycopg import sql

    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    identifier = sql.Identifier(name)
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(identifier))
    try:
        yield urllib.parse.urlsplit(server)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(identifier)
            admin.execute(drop)
