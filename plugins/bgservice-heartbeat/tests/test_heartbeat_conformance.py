"""The installed heartbeat backend passes the bgservice conformance check."""

from __future__ import annotations

from pathlib import Path

from bgservice_core.testing import ConformanceCheck


def test_heartbeat_conforms(
    bgservice_conformance: ConformanceCheck, tmp_path: Path
) -> None:
    """Entry point, hook, settings errors, start, drain and threads all conform."""
    report = bgservice_conformance(
        "heartbeat",
        environment={
            "BGSERVICE_HEARTBEAT_DB": str(tmp_path / "heartbeat.db"),
            "BGSERVICE_HEARTBEAT_PERIOD": "3600",
        },
        bad_settings=[
            {"BGSERVICE_HEARTBEAT_PERIOD": "abc"},
            {"BGSERVICE_HEARTBEAT_PERIOD": "0"},
            {"BGSERVICE_HEARTBEAT_DB": "postgresql://db.example/heartbeat"},
            {"BGSERVICE_HEARTBEAT_DB": str(tmp_path / "missing" / "heartbeat.db")},
        ],
    )

    # The service really ran: it wrote where the environment told it to.
    assert (tmp_path / "heartbeat.db").exists()
    rejected = [r.check for r in report.results if r.check.startswith("rejects")]
    assert len(rejected) == 4
