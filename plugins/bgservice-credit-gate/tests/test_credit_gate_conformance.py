"""The installed credit-gate backend passes the bgservice conformance check."""

from __future__ import annotations

from pathlib import Path

from bgservice_core.testing import ConformanceCheck


def test_credit_gate_conforms(
    bgservice_conformance: ConformanceCheck, tmp_path: Path
) -> None:
    """Entry point, hook, settings errors, start, drain and threads all conform."""
    report = bgservice_conformance(
        "credit-gate",
        environment={
            "BGSERVICE_CREDIT_DSN": str(tmp_path / "ledger.db"),
            "BGSERVICE_CREDIT_STATE_DSN": str(tmp_path / "state.db"),
        },
        bad_settings=[
            {"BGSERVICE_CREDIT_PERIOD": "soon"},
            {"BGSERVICE_CREDIT_THRESHOLD": "lots"},
            {"BGSERVICE_CREDIT_DENY_STATUS": "200"},
            {"BGSERVICE_CREDIT_DSN": "mysql://db.example/ledger"},
            {"BGSERVICE_CREDIT_STATE_DSN": str(tmp_path / "missing" / "state.db")},
            {"BGSERVICE_CREDIT_MAX_BACKOFF": "-1"},
        ],
    )

    rejected = [r.check for r in report.results if r.check.startswith("rejects")]
    assert len(rejected) == 6
