"""Settings: defaults, where the databases default to, and clear errors."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from bgservice_credit_gate import CreditGateService, read_settings
from bgservice_credit_gate._locations import parse_location

import bgservice_core
from bgservice_core import ServiceConstructionError, SettingError

SECRET = "s3cr3t-Pa55"


def test_the_defaults(tmp_path: Path) -> None:
    """Every 30 s, at or below 0, status 402, both databases bgservice.db."""
    settings = read_settings()

    assert (settings.period, settings.threshold, settings.deny_status) == (
        30.0,
        Decimal(0),
        402,
    )
    assert settings.max_backoff == 300.0
    assert (settings.ledger.path, settings.engagements.path) == (
        Path("bgservice.db"),
        Path("bgservice.db"),
    )


def test_both_databases_default_to_the_chassis_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """BGSERVICE_DB, which bgservice run sets, is the default for both."""
    monkeypatch.setenv("BGSERVICE_DB", "chassis.db")
    settings = read_settings()
    assert settings.ledger.path == Path("chassis.db")
    assert settings.engagements.path == Path("chassis.db")


def test_each_database_may_be_set_apart(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A sqlite:/// URL and a plain path are both SQLite files."""
    monkeypatch.setenv("BGSERVICE_DB", "chassis.db")
    url = f"sqlite:///{tmp_path}/billing.db"
    monkeypatch.setenv("BGSERVICE_CREDIT_DSN", url)
    monkeypatch.setenv("BGSERVICE_CREDIT_STATE_DSN", "state.db")
    settings = read_settings()

    assert settings.ledger.path == tmp_path / "billing.db"
    assert settings.engagements.path == Path("state.db")


def test_a_decimal_threshold_is_kept_exact(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The threshold is a Decimal, so 12.50 is compared as 12.50."""
    monkeypatch.setenv("BGSERVICE_CREDIT_THRESHOLD", " 12.50 ")
    assert read_settings().threshold == Decimal("12.50")


ANY_SQLITE_OR_POSTGRESQL = (
    "a SQLite file path, a sqlite:///path URL or a "
    "postgresql://user:password@host:port/database URL"
)


@pytest.mark.parametrize(
    ("variable", "value", "shown", "expected"),
    [
        (
            "BGSERVICE_CREDIT_PERIOD",
            "soon",
            "soon",
            "a positive number of seconds, such as 30",
        ),
        (
            "BGSERVICE_CREDIT_THRESHOLD",
            "NaN",
            "NaN",
            "a decimal number, such as 0 or 12.50",
        ),
        (
            "BGSERVICE_CREDIT_THRESHOLD",
            "ten",
            "ten",
            "a decimal number, such as 0 or 12.50",
        ),
        (
            "BGSERVICE_CREDIT_THRESHOLD",
            "1e400",
            "1e400",
            "a decimal number, such as 0 or 12.50",
        ),
        (
            "BGSERVICE_CREDIT_THRESHOLD",
            "1_0",
            "1_0",
            "a decimal number, such as 0 or 12.50",
        ),
        (
            "BGSERVICE_CREDIT_THRESHOLD",
            "\u0661\u0660",
            "\u0661\u0660",
            "a decimal number, such as 0 or 12.50",
        ),
        (
            "BGSERVICE_CREDIT_DENY_STATUS",
            "200",
            "200",
            "a whole number from 400 to 599, such as 402",
        ),
        (
            "BGSERVICE_CREDIT_MAX_BACKOFF",
            "0",
            "0",
            "a positive number of seconds, such as 300",
        ),
        (
            "BGSERVICE_CREDIT_DSN",
            f"mysql://bob:{SECRET}@db.example/billing",
            "mysql://bob:***@db.example/billing",
            ANY_SQLITE_OR_POSTGRESQL,
        ),
        (
            "BGSERVICE_CREDIT_DSN",
            f"postgresql://bob:{SECRET}%zz@db.example/billing",
            "postgresql://bob:***@db.example/billing",
            f'{ANY_SQLITE_OR_POSTGRESQL} (invalid percent-encoded token: "***")',
        ),
        (
            "BGSERVICE_CREDIT_STATE_DSN",
            "/nonexistent/state.db",
            "/nonexistent/state.db",
            "a SQLite file in an existing directory (/nonexistent does not exist)",
        ),
        (
            "BGSERVICE_CREDIT_STATE_DSN",
            ".",
            ".",
            "a SQLite file, not a directory",
        ),
        (
            "BGSERVICE_DB",
            "/nonexistent/bgservice.db",
            "/nonexistent/bgservice.db",
            "a SQLite file in an existing directory (/nonexistent does not exist)",
        ),
    ],
)
def test_a_bad_setting_names_the_variable_and_value(
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    shown: str,
    expected: str,
) -> None:
    """The error quotes the value, password hidden, and what is expected."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingError) as info:
        read_settings()

    message = f"{variable}='{shown}' is invalid: expected {expected}"
    assert str(info.value) == message
    assert info.value.variable == variable


def test_a_bad_setting_stops_the_backend_from_opening(
    monkeypatch: pytest.MonkeyPatch, config: bgservice_core.Config
) -> None:
    """Through the entry point it is a construction error, password hidden."""
    dsn = f"postgres://bob:{SECRET}%zz@db.example/billing"
    monkeypatch.setenv("BGSERVICE_CREDIT_DSN", dsn)
    with pytest.raises(ServiceConstructionError) as info:
        bgservice_core.open("credit-gate", config)

    shown = "BGSERVICE_CREDIT_DSN='postgres://bob:***@db.example/billing'"
    assert shown in str(info.value)
    assert SECRET not in str(info.value)


def test_opening_reaches_no_database(
    monkeypatch: pytest.MonkeyPatch, config: bgservice_core.Config
) -> None:
    """An unreachable ledger does not stop the chassis; the ticks report it."""
    unreachable = "postgresql://bob@127.0.0.1:1/none"
    monkeypatch.setenv("BGSERVICE_CREDIT_DSN", unreachable)
    (service,) = bgservice_core.open("credit-gate", config)
    assert isinstance(service, CreditGateService)


def test_a_location_never_shows_its_password() -> None:
    """str and repr of a PostgreSQL location redact the password."""
    location = parse_location(
        "BGSERVICE_CREDIT_DSN", f"postgresql://bob:{SECRET}@db.example/billing"
    )
    assert str(location) == "postgresql://bob:***@db.example/billing"
    shown = "postgresql://bob:***@db.example/billing"
    assert repr(location) == f"Location(BGSERVICE_CREDIT_DSN={shown!r})"
    assert location.is_postgres
