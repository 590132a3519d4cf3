"""The credit-gate service through its entry point: SQLite and PostgreSQL."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from bgservice_credit_gate import CreditGateService
from bgservice_credit_gate._locations import parse_location
from credit_gate_testing import (
    NODE_ID,
    Databases,
    RecordingGate,
    engage,
    release,
    wait_until,
)

import bgservice_core
from bgservice_core.tenants import SQLiteTenantStore
from bgservice_core.tenants_postgres import PostgresTenantStore

OpenService = Callable[..., CreditGateService]


def test_tenants_at_or_below_the_threshold_are_suspended(
    databases: Databases, open_service: OpenService, gate: RecordingGate
) -> None:
    """One engage per exhausted tenant: status 402 and credit_exhausted."""
    databases.set_balances(acme=0, globex=25, initech=-3, umbrella="0.01")
    open_service().tick()

    assert gate.take() == [engage("acme"), engage("initech")]


def test_the_threshold_and_status_are_settings(
    databases: Databases,
    open_service: OpenService,
    gate: RecordingGate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """BGSERVICE_CREDIT_THRESHOLD and _DENY_STATUS shape the suspensions."""
    monkeypatch.setenv("BGSERVICE_CREDIT_THRESHOLD", "10.5")
    monkeypatch.setenv("BGSERVICE_CREDIT_DENY_STATUS", "403")
    databases.set_balances(acme="10.5", globex="10.51")
    open_service().tick()

    assert gate.take() == [engage("acme", 403)]


def test_a_topped_up_tenant_is_readmitted(
    databases: Databases, open_service: OpenService, gate: RecordingGate
) -> None:
    """A balance above the threshold releases a gate the service engaged."""
    databases.set_balances(acme=0, globex=0)
    service = open_service()
    service.tick()
    databases.set_balances(acme=100)
    service.tick()

    assert gate.take() == [engage("acme"), engage("globex"), release("acme")]


def test_a_steady_state_makes_no_gate_calls(
    databases: Databases, open_service: OpenService, gate: RecordingGate
) -> None:
    """Once the gates match the balances, further ticks call nothing."""
    databases.set_balances(acme=0, globex=25)
    service = open_service()
    service.tick()
    gate.take()
    for _ in range(3):
        service.tick()

    assert gate.take() == []


def test_a_tenant_suspended_for_another_reason_is_left_alone(
    databases: Databases,
    tmp_path: Path,
    config: bgservice_core.Config,
    open_service: OpenService,
) -> None:
    """The service never releases a suspension it did not make."""
    store: SQLiteTenantStore | PostgresTenantStore
    if databases.kind == "postgres":
        store = PostgresTenantStore(databases.engagements, "operator")
    else:
        store = SQLiteTenantStore(tmp_path / "tenants.db", "operator")
    for slug in ("acme", "abuser"):
        store.add_tenant(slug)
    store.set_gate("abuser", True, 403, "abuse")
    databases.set_balances(acme=0, abuser=50)

    chassis = bgservice_core.Config(config.logger, store, NODE_ID)
    service = open_service(chassis)
    service.tick()
    databases.set_balances(acme=10)
    service.tick()

    abuser = store.get("abuser")
    assert (abuser.suspended, abuser.deny_reason, abuser.changed_by) == (
        True,
        "abuse",
        "operator",
    )
    assert store.get("acme").suspended is False
    if isinstance(store, PostgresTenantStore):
        store.close()


def test_a_restart_repeats_nothing_and_loses_no_release(
    databases: Databases, open_service: OpenService, gate: RecordingGate
) -> None:
    """A new service on the same databases goes on where the last stopped."""
    databases.set_balances(acme=0, globex=0)
    first = open_service()
    first.start()
    wait_until(lambda: len(gate.calls) == 2)
    first.stop()
    databases.set_balances(acme=5)

    second = open_service()
    second.tick()
    second.tick()

    assert gate.take() == [engage("acme"), engage("globex"), release("acme")]


def test_a_gate_error_for_one_tenant_spares_the_others(
    databases: Databases,
    open_service: OpenService,
    gate: RecordingGate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The failing tenant is logged with its cause; the rest are changed."""
    gate.failures["globex"] = RuntimeError("tenant database is read-only")
    databases.set_balances(acme=0, globex=0, initech=0)
    with caplog.at_level(logging.WARNING, logger="tests.credit-gate"):
        open_service().tick()

    assert gate.take() == [engage("acme"), engage("initech")]
    assert caplog.messages == [
        "could not engage the gate of tenant 'globex' (balance 0): RuntimeError: "
        "tenant database is read-only; retrying in 30s"
    ]


def test_a_failed_engage_is_retried_and_then_recorded(
    databases: Databases,
    open_service: OpenService,
    gate: RecordingGate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After its delay the failed call is made again; once it works, once."""
    monkeypatch.setenv("BGSERVICE_CREDIT_PERIOD", "0.01")
    gate.failures["acme"] = RuntimeError("try later")
    databases.set_balances(acme=0)
    service = open_service()
    service.tick()
    del gate.failures["acme"]

    wait_until(lambda: service.tick() is None and bool(gate.calls))
    service.tick()
    assert gate.take() == [engage("acme")]


def test_the_ledger_going_away_and_coming_back(
    databases: Databases,
    open_service: OpenService,
    gate: RecordingGate,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An unreadable ledger is logged and retried; no change meanwhile."""
    monkeypatch.setenv("BGSERVICE_CREDIT_PERIOD", "0.01")
    databases.set_balances(acme=0)
    service = open_service()
    service.tick()
    gate.take()
    _drop_ledger(databases)

    with caplog.at_level(logging.INFO, logger="tests.credit-gate"):
        service.tick()
        databases.set_balances(acme=10)
        wait_until(lambda: service.tick() is None and bool(gate.calls))

    assert gate.take() == [release("acme")]
    outage, readmitted, recovered = caplog.messages
    shown = _shown(databases)
    assert outage.startswith(f"credit ledger {shown} is unusable: ")
    assert "credit_balances" in outage
    assert outage.endswith("; retrying in 0.01s")
    assert readmitted == "readmitted tenant 'acme': balance 10 is above 0"
    assert recovered == (
        "the credit ledger and engagement store work again after 1 failed attempt(s)"
    )


def test_stop_lets_the_tick_in_flight_finish(
    databases: Databases,
    open_service: OpenService,
    gate: RecordingGate,
) -> None:
    """stop() waits for the tick under way to make all its changes, then returns."""
    gate.proceed = threading.Event()
    databases.set_balances(acme=0, globex=0)
    service = open_service()
    service.start()
    assert gate.entered.wait(timeout=30)

    stopper = threading.Thread(target=service.stop)
    stopper.start()
    stopper.join(timeout=0.2)
    assert stopper.is_alive()
    gate.proceed.set()
    stopper.join(timeout=5)

    assert not stopper.is_alive()
    assert gate.take() == [engage("acme"), engage("globex")]
    gate.proceed = None
    open_service().tick()
    assert gate.take() == []


def test_two_nodes_never_send_the_same_change(
    databases: Databases,
    config: bgservice_core.Config,
    open_service: OpenService,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Racing ticks on two nodes make each change once, one call at a time."""
    monkeypatch.setenv("BGSERVICE_CREDIT_PERIOD", "0.02")
    shared = RecordingGate(delay=0.005)
    slugs = [f"tenant-{index:02d}" for index in range(12)]
    databases.set_balances(**dict.fromkeys(slugs, 0))
    nodes = [
        open_service(bgservice_core.Config(config.logger, shared, node))
        for node in ("node-a", "node-b")
    ]

    with caplog.at_level(logging.DEBUG, logger="tests.credit-gate"):
        for node in nodes:
            node.start()
        wait_until(lambda: len(shared.calls) == len(slugs))
        databases.set_balances(**dict.fromkeys(slugs, 1))
        wait_until(lambda: len(shared.calls) == 2 * len(slugs))
        # More ticks on both nodes, which must find nothing left to do.
        ticks = len(caplog.messages)
        wait_until(lambda: len(caplog.messages) > ticks + 10)
        for node in nodes:
            node.stop()

    engages = [engage(slug) for slug in slugs]
    assert shared.take() == [*engages, *[release(slug) for slug in slugs]]
    assert shared.most_in_flight == 1


def test_a_ledger_row_without_a_number_is_left_alone(
    databases: Databases,
    open_service: OpenService,
    gate: RecordingGate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A balance that is no finite number is reported, not acted upon."""
    databases.set_balances(acme=0, globex="NaN")
    with caplog.at_level(logging.WARNING, logger="tests.credit-gate"):
        open_service().tick()

    assert gate.take() == [engage("acme")]
    assert caplog.messages == [
        "ledger row of tenant 'globex' has balance "
        f"{_stored_nan(databases)}, which is no number; the tenant is left as it is"
    ]


def test_an_engaged_tenant_gone_from_the_ledger_is_reported_once(
    databases: Databases,
    open_service: OpenService,
    gate: RecordingGate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """It stays suspended, and a warning says so once per process."""
    databases.set_balances(acme=0)
    service = open_service()
    service.tick()
    _delete_ledger_row(databases, "acme")
    with caplog.at_level(logging.WARNING, logger="tests.credit-gate"):
        service.tick()
        service.tick()

    assert gate.take() == [engage("acme")]
    assert caplog.messages == [
        "tenant 'acme', whose gate this service engaged, is not in the ledger any "
        "more; it stays suspended until it is"
    ]


def test_an_engaged_tenant_whose_balance_turns_unreadable_is_not_called_gone(
    databases: Databases,
    open_service: OpenService,
    gate: RecordingGate,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its row is still listed: reported as no number, and left suspended."""
    databases.set_balances(acme=0)
    service = open_service()
    service.tick()
    databases.set_balances(acme="NaN")
    with caplog.at_level(logging.WARNING, logger="tests.credit-gate"):
        service.tick()

    assert gate.take() == [engage("acme")]
    assert caplog.messages == [
        "ledger row of tenant 'acme' has balance "
        f"{_stored_nan(databases)}, which is no number; the tenant is left as it is"
    ]


def test_no_password_reaches_the_logs(
    bgservice_postgres_dsn: str,
    open_service: OpenService,
    gate: RecordingGate,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Start-up, an outage and a Gate error quoting the DSN are scrubbed."""
    password = bgservice_postgres_dsn.split(":")[2].split("@")[0]
    unreachable = bgservice_postgres_dsn.replace(f"{password}@", f"{password}-wrong@")
    monkeypatch.setenv("BGSERVICE_CREDIT_DSN", unreachable)
    monkeypatch.setenv("BGSERVICE_CREDIT_STATE_DSN", bgservice_postgres_dsn)

    with caplog.at_level(logging.DEBUG):
        service = open_service()
        service.setup()
        service.tick()
        monkeypatch.setenv("BGSERVICE_CREDIT_DSN", bgservice_postgres_dsn)
        Databases(
            "postgres", bgservice_postgres_dsn, bgservice_postgres_dsn
        ).set_balances(acme=0)
        gate.failures["acme"] = RuntimeError(f"cannot reach {bgservice_postgres_dsn}")
        open_service().tick()

    logged = "\n".join(caplog.messages)
    assert "password authentication failed" in logged
    assert "cannot reach postgresql://bgservice:***@" in logged
    assert password not in logged


def _drop_ledger(databases: Databases) -> None:
    _execute(databases, "DROP TABLE credit_balances")


def _delete_ledger_row(databases: Databases, slug: str) -> None:
    _execute(databases, f"DELETE FROM credit_balances WHERE slug = '{slug}'")


def _execute(databases: Databases, statement: str) -> None:
    if databases.kind == "postgres":
        import psycopg

        with psycopg.connect(databases.ledger, autocommit=True) as connection:
            connection.execute(statement)
        return
    import sqlite3

    with sqlite3.connect(databases.ledger) as connection:
        connection.execute(statement)
    connection.close()


def _shown(databases: Databases) -> str:
    return str(parse_location("BGSERVICE_CREDIT_DSN", databases.ledger))


def _stored_nan(databases: Databases) -> str:
    # PostgreSQL's NUMERIC keeps NaN as a Decimal; SQLite keeps the text.
    return "Decimal('NaN')" if databases.kind == "postgres" else "'NaN'"
