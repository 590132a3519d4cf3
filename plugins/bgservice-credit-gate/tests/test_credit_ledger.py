"""Reading the ledger: the database selects the rows a tick may act on."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from bgservice_credit_gate import CreditGateService
from bgservice_credit_gate._locations import Location, parse_location
from bgservice_credit_gate.ledger import LOOKUP_BATCH, select_balances
from credit_gate_testing import Databases, RecordingGate, engage

ZERO = Decimal(0)

#: Balances that are no finite number, as SQL literals and as read back.
UNREADABLE: dict[str, dict[str, tuple[str, object]]] = {
    "sqlite": {
        "lots": ("'lots'", "lots"),
        "nan": ("'NaN'", "NaN"),
        "blob": ("x'01'", b"\x01"),
        "overflow": ("1e999", math.inf),
        "underflow": ("-1e999", -math.inf),
    },
    "postgres": {
        "nan": ("'NaN'", Decimal("NaN")),
        "infinite": ("'Infinity'", Decimal("Infinity")),
        "negative-infinite": ("'-Infinity'", Decimal("-Infinity")),
    },
}


def _ledger(databases: Databases) -> Location:
    return parse_location("BGSERVICE_CREDIT_DSN", databases.ledger)


def test_only_the_rows_a_tick_may_act_on_are_read(databases: Databases) -> None:
    """Out of credit, unreadable or recorded: no other tenant reaches Python."""
    databases.set_balances(acme=0, globex=25, initech=-3, umbrella=40, stark="NaN")
    recorded = {"acme", "umbrella", "hooli"}

    snapshot = select_balances(_ledger(databases), ZERO, recorded)

    assert snapshot.balances == {
        "acme": Decimal(0),
        "initech": Decimal(-3),
        "umbrella": Decimal(40),
    }
    assert list(snapshot.unreadable) == ["stark"]
    assert ("hooli" in snapshot, "globex" in snapshot) == (False, False)


def test_every_recorded_tenant_is_looked_up_however_many(
    databases: Databases,
) -> None:
    """Recorded tenants in credit are all found, beyond one batch of keys."""
    slugs = [f"tenant-{number:04d}" for number in range(2 * LOOKUP_BATCH + 7)]
    databases.set_balances(**dict.fromkeys(slugs, 5), other=6)

    snapshot = select_balances(_ledger(databases), ZERO, slugs)

    assert snapshot.balances == dict.fromkeys(slugs, Decimal(5))


def test_every_balance_that_is_no_finite_number_is_selected(
    databases: Databases,
) -> None:
    """Text, blobs, NaN and infinities are all read, to be reported."""
    databases.set_balances(acme=7)
    odd = UNREADABLE[databases.kind]
    for slug, (literal, _) in odd.items():
        databases.execute(f"INSERT INTO credit_balances VALUES ('{slug}', {literal})")

    snapshot = select_balances(_ledger(databases), ZERO, ())

    assert snapshot.balances == {}
    found = {slug: repr(value) for slug, value in snapshot.unreadable.items()}
    assert found == {slug: repr(value) for slug, (_, value) in odd.items()}


def test_a_threshold_finer_than_a_float_is_compared_exactly(
    databases: Databases,
    open_service: Callable[..., CreditGateService],
    gate: RecordingGate,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """2**53 + 1 is not rounded to 2**53: at it suspends, one above does not."""
    monkeypatch.setenv("BGSERVICE_CREDIT_THRESHOLD", str(2**53 + 1))
    databases.set_balances(acme=2**53 + 1, globex=2**53 + 2, initech=2**53)
    open_service().tick()

    assert gate.take() == [engage("acme"), engage("initech")]


@pytest.mark.parametrize(
    ("ledger_query", "connections"),
    [("", 1), ("?application_name=credit-ledger", 2)],
    ids=["same-database", "other-dsn"],
)
def test_a_ledger_in_the_store_database_shares_its_connection(
    bgservice_postgres_dsn: str,
    open_service: Callable[..., CreditGateService],
    monkeypatch: pytest.MonkeyPatch,
    ledger_query: str,
    connections: int,
) -> None:
    """A tick connects once when both settings name one database, else twice."""
    monkeypatch.setenv("BGSERVICE_CREDIT_DSN", bgservice_postgres_dsn + ledger_query)
    monkeypatch.setenv("BGSERVICE_CREDIT_STATE_DSN", bgservice_postgres_dsn)
    Databases("postgres", bgservice_postgres_dsn, bgservice_postgres_dsn).set_balances(
        acme=0, b=5
    )
    service = open_service()
    service.tick()

    opened: list[str] = []
    connect = psycopg.connect

    def counting_connect(dsn: str, **options: Any) -> psycopg.Connection[Any]:
        opened.append(dsn)
        return connect(dsn, **options)

    monkeypatch.setattr(psycopg, "connect", counting_connect)
    service.tick()

    assert len(opened) == connections
