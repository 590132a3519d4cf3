"""Fixtures for the heartbeat backend's tests, which use the installed distribution.

The backend is always opened through ``bgservice_core.open("heartbeat", ...)``,
so the entry point pip recorded for ``bgservice-heartbeat`` is what gets loaded.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import bgservice_core

NODE_ID = "node-1.test.example"

#: Settings the tests set themselves; inherited values would change the outcome.
SETTINGS = ("BGSERVICE_HEARTBEAT_PERIOD", "BGSERVICE_HEARTBEAT_DB", "BGSERVICE_DB")


class RefusingGate:
    """A Gate for a service that must never touch tenants."""

    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        raise AssertionError(f"the heartbeat changed the gate of {slug!r}")


@pytest.fixture
def config() -> bgservice_core.Config:
    """The chassis configuration handed to the backend."""
    return bgservice_core.Config(
        logger=logging.getLogger("tests.heartbeat"),
        gate=RefusingGate(),
        node_id=NODE_ID,
    )


@pytest.fixture(autouse=True)
def _no_inherited_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test with the heartbeat's variables unset."""
    for variable in SETTINGS:
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh database file, named by BGSERVICE_HEARTBEAT_DB."""
    path = tmp_path / "bgservice.db"
    monkeypatch.setenv("BGSERVICE_HEARTBEAT_DB", str(path))
    return path


@pytest.fixture
def open_heartbeat(
    config: bgservice_core.Config,
) -> Iterator[Callable[[], bgservice_core.Service]]:
    """Open the installed heartbeat backend; every service opened is stopped after."""
    opened: list[bgservice_core.Service] = []

    def open_one() -> bgservice_core.Service:
        (service,) = bgservice_core.open("heartbeat", config)
        opened.append(service)
        return service

    yield open_one
    for service in opened:
        service.stop()
