"""The stand-in billing system that demos and tests write the ledger with."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from bgservice_credit_gate._locations import parse_location
from bgservice_credit_gate.billing import main
from bgservice_credit_gate.ledger import read_balances


def test_balances_are_set_in_the_chassis_database_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no --dsn it writes bgservice.db, creating the table."""
    assert main(["acme=0", "globex=12.50"]) == 0
    assert main(["acme=3"]) == 0

    location = parse_location("DSN", str(tmp_path / "bgservice.db"))
    ledger = read_balances(location)
    assert ledger.balances == {"acme": Decimal(3), "globex": Decimal("12.5")}
    assert capsys.readouterr().out == "acme: 0\nglobex: 12.50\nacme: 3\n"


def test_it_runs_as_a_module(tmp_path: Path) -> None:
    """python -m bgservice_credit_gate.billing works, without warnings."""
    module = ["-W", "error", "-m", "bgservice_credit_gate.billing"]
    ledger = ["--dsn", str(tmp_path / "ledger.db")]
    completed = subprocess.run(
        [sys.executable, *module, *ledger, "acme=-1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (completed.returncode, completed.stdout, completed.stderr) == (
        0,
        "acme: -1\n",
        "",
    )


def test_a_malformed_pair_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Each argument must be SLUG=BALANCE with a number."""
    with pytest.raises(SystemExit) as info:
        main(["acme=lots"])
    assert info.value.code == 2
    assert "'acme=lots' is no SLUG=BALANCE pair, such as acme=12.50" in (
        capsys.readouterr().err
    )


def test_an_unreachable_ledger_is_reported_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The error names the ledger with its password redacted."""
    with pytest.raises(SystemExit) as info:
        main(["--dsn", "postgresql://bob:hunter2@127.0.0.1:1/ledger", "acme=1"])

    error = capsys.readouterr().err
    assert info.value.code == 1
    assert error.startswith(
        "error: credit ledger postgresql://bob:***@127.0.0.1:1/ledger is unusable: "
    )
    assert "hunter2" not in error
