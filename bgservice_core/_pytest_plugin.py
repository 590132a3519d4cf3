"""The pytest plugin of ``bgservice-core``: fixtures for testing backends.

pytest loads it in every run of an environment where bgservice-core is
installed (entry-point group ``pytest11``, name ``bgservice``), so it only
defines fixtures: none is autouse, and the testing kit is imported by the first
fixture a test asks for. ``-p no:bgservice`` turns it off.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from bgservice_core import Config
    from bgservice_core.testing import (
        BackendHarness,
        ConformanceCheck,
        CrashRecorder,
        RecordingGate,
    )


@pytest.fixture
def bgservice_gate() -> RecordingGate:
    """A Gate that records every ``set_gate`` call, with assertion helpers."""
    from bgservice_core.testing import RecordingGate

    return RecordingGate()


@pytest.fixture
def bgservice_crashes() -> CrashRecorder:
    """Collects the crashes services report through ``report_failure``."""
    from bgservice_core.testing import CrashRecorder

    return CrashRecorder()


@pytest.fixture
def bgservice_config(
    bgservice_gate: RecordingGate, bgservice_crashes: CrashRecorder
) -> Config:
    """A Config with ``bgservice_gate`` and ``bgservice_crashes`` wired in."""
    from bgservice_core.testing import make_config

    return make_config(gate=bgservice_gate, failure_handler=bgservice_crashes)


@pytest.fixture
def bgservice_backend(bgservice_config: Config) -> Iterator[BackendHarness]:
    """Builds backends through their entry points; stops them all at teardown.

    Teardown fails the test if a service does not stop within the harness's
    ``drain_timeout`` (seconds; set it in the test to change it).
    """
    from bgservice_core.testing import BackendHarness

    harness = BackendHarness(bgservice_config)
    yield harness
    harness.close()


@pytest.fixture
def bgservice_conformance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ConformanceCheck:
    """Runs the conformance check, in a temporary working directory.

    Files a backend writes by default into the working directory land in
    ``tmp_path``.
    """
    from bgservice_core.testing import check_conformance

    monkeypatch.chdir(tmp_path)
    return check_conformance


@pytest.fixture
def bgservice_postgres_dsn() -> Iterator[str]:
    """A ``postgresql://`` URL of a fresh, empty database, dropped afterwards.

    The server is the one ``BGSERVICE_TEST_POSTGRES_DSN`` names. Without it the
    test is skipped, except where ``CI`` is set: there it fails, since CI is
    expected to provide the server.
    """
    import os

    from bgservice_core.testing import postgres_test_database

    server = os.environ.get("BGSERVICE_TEST_POSTGRES_DSN", "").strip()
    if not server:
        reason = (
            "BGSERVICE_TEST_POSTGRES_DSN is not set: source .ci/postgres.sh to "
            "start a PostgreSQL server for these tests"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run them")
        pytest.skip(reason)

    with postgres_test_database(server) as dsn:
        yield dsn
