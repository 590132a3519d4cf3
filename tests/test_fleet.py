"""A fleet: two ``bgservice run`` processes on one PostgreSQL database.

A change one chassis makes through its Gate is announced when it commits; the
other chassis reloads that tenant and logs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgservice_core.tenants_postgres import PostgresTenantStore
from tests.distributions import install_distribution

#: A backend that, when told to, suspends one tenant through the Gate on start.
PROBE_MODULE = """
import os

from bgservice_core import hookimpl


class Probe:
    def __init__(self, config):
        self.config = config

    def start(self):
        slug = os.environ.get("FLEET_PROBE_SUSPEND")
        if slug:
            self.config.gate.set_gate(slug, True, 403, "fleet_probe")
            self.config.logger.info("probe suspended %s", slug)

    def stop(self):
        pass


@hookimpl
def bgservice_build_service(config):
    return Probe(config)
"""

TIMEOUT = 30.0


class Chassis:
    """One ``bgservice run`` process, its log in a file."""

    def __init__(self, node_id: str, dsn: str, log: Path, **env: str) -> None:
        self.node_id = node_id
        self.log = log
        command = [sys.executable, "-m", "bgservice_core._cli", "run"]
        command += ["fleet-probe", "--db", dsn, "--node-id", node_id]
        with log.open("w") as output:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, **env},
            )

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, line: str) -> None:
        """Wait for ``line`` in the log; fail with the log if it never comes."""
        deadline = time.monotonic() + TIMEOUT
        while line not in self.text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = self.text()
                pytest.fail(f"{self.node_id} never logged {line!r}:\n{log}")
            time.sleep(0.05)

    def drain(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=TIMEOUT)


@pytest.fixture
def chassis(
    site_dir: Path, bgservice_postgres_dsn: str, tmp_path: Path
) -> Iterator[dict[str, Chassis]]:
    """Start node-b, then node-a, which suspends acme as it starts."""
    install_distribution(
        site_dir,
        "fleet-probe",
        entry_points={"fleet-probe": "fleet_probe"},
        modules={"fleet_probe.py": PROBE_MODULE},
    )
    with PostgresTenantStore(bgservice_postgres_dsn, "operator") as operator:
        operator.add_tenant("acme")

    nodes: dict[str, Chassis] = {}
    try:
        # node-b listens before node-a changes anything.
        nodes["b"] = Chassis("node-b", bgservice_postgres_dsn, tmp_path / "b.log")
        nodes["b"].wait_for("running 1 service(s)")
        suspend = {"FLEET_PROBE_SUSPEND": "acme"}
        log = tmp_path / "a.log"
        nodes["a"] = Chassis("node-a", bgservice_postgres_dsn, log, **suspend)
        nodes["a"].wait_for("probe suspended acme")
        yield nodes
    finally:
        for node in nodes.values():
            if node.process.poll() is None:
                node.process.kill()
                node.process.wait()


def test_a_change_through_one_chassis_is_reloaded_by_the_other(
    chassis: dict[str, Chassis], bgservice_postgres_dsn: str
) -> None:
    """node-b logs the reload of the tenant node-a's Gate suspended."""
    chassis["b"].wait_for(
        "reloaded tenant 'acme' after a change by node 'node-a': "
        "suspended (403 fleet_probe)"
    )

    assert chassis["a"].drain() == 0
    assert chassis["b"].drain() == 0
    with PostgresTenantStore(bgservice_postgres_dsn, "operator") as operator:
        assert operator.get("acme").changed_by == "node-a"


def test_every_chassis_but_the_author_reloads_a_change(
    chassis: dict[str, Chassis], bgservice_postgres_dsn: str
) -> None:
    """A change from a third process reaches both; node-a skips its own."""
    with PostgresTenantStore(bgservice_postgres_dsn, "operator") as operator:
        operator.set_gate("acme", False, 403, "fleet_probe")
    for node in chassis.values():
        node.wait_for("after a change by node 'operator'")

    # Announcements arrive in commit order: node-a's own came before this one.
    assert "by node 'node-a'" not in chassis["a"].text()
    assert chassis["a"].drain() == 0
    assert chassis["b"].drain() == 0


def test_no_chassis_logs_the_password(
    chassis: dict[str, Chassis], bgservice_postgres_dsn: str
) -> None:
    """The database appears in the logs only with its password redacted."""
    chassis["b"].wait_for("reloaded tenant 'acme'")
    for node in chassis.values():
        node.drain()

    password = bgservice_postgres_dsn.split(":")[2].split("@")[0]
    for node in chassis.values():
        log = node.text()
        assert "tenant changes in postgresql://bgservice:***@" in log
        assert password not in log
