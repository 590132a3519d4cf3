"""Fixtures for the credit-gate backend's tests.

The backend is opened through ``bgservice_core.open("credit-gate", ...)``, so
the entry point pip recorded for ``bgservice-credit-gate`` is what gets loaded.
Tests marked for both databases run once on SQLite files and once on a real
PostgreSQL server (BGSERVICE_TEST_POSTGRES_DSN; ``. .ci/postgres.sh`` starts
one): without it the PostgreSQL runs are skipped, except in CI: they fail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from bgservice_credit_gate import CreditGateService
from credit_gate_testing import NODE_ID, SETTINGS, Databases, RecordingGate

import bgservice_core


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run each test without inherited settings, in an empty directory."""
    for variable in SETTINGS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(params=["sqlite", "postgres"])
def databases(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Databases:
    """The ledger and engagement store, on SQLite files or on PostgreSQL.

    The settings point at them, and the ledger table exists, empty.
    """
    if request.param == "postgres":
        dsn = request.getfixturevalue("bgservice_postgres_dsn")
        found = Databases("postgres", dsn, dsn)
    else:
        found = Databases(
            "sqlite", str(tmp_path / "ledger.db"), str(tmp_path / "bgservice.db")
        )
    monkeypatch.setenv("BGSERVICE_CREDIT_DSN", found.ledger)
    monkeypatch.setenv("BGSERVICE_CREDIT_STATE_DSN", found.engagements)
    found.set_balances()
    return found


@pytest.fixture
def gate() -> RecordingGate:
    """The Gate the service calls."""
    return RecordingGate()


@pytest.fixture
def config(gate: RecordingGate) -> bgservice_core.Config:
    """The chassis configuration handed to the backend."""
    return bgservice_core.Config(
        logger=logging.getLogger("tests.credit-gate"),
        gate=gate,
        node_id=NODE_ID,
    )


@pytest.fixture
def open_service(
    config: bgservice_core.Config,
) -> Iterator[Callable[..., CreditGateService]]:
    """Open credit-gate through its entry point; stop what was started."""
    opened: list[CreditGateService] = []

    def open_one(
        chassis: bgservice_core.Config = config,
    ) -> CreditGateService:
        (service,) = bgservice_core.open("credit-gate", chassis)
        assert isinstance(service, CreditGateService)
        opened.append(service)
        return service

    yield open_one
    for service in opened:
        service.stop()
