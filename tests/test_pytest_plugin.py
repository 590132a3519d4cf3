"""The pytest plugin, as a user's test run meets it: through the ``pytest11`` entry.

Every run here is a pytest of its own, in a subprocess, so that what the plugin
imports and does can be seen from a clean interpreter.
"""

from __future__ import annotations

from pathlib import Path

import importlib_metadata
import pytest

from tests.distributions import install_distribution

pytest_plugins = ["pytester"]

FIXTURES = [
    "bgservice_backend",
    "bgservice_config",
    "bgservice_conformance",
    "bgservice_crashes",
    "bgservice_gate",
    "bgservice_postgres_dsn",
]

#: A backend whose stop() writes the file STOP_MARKER names, or never returns.
MARKING_MODULE = """
import os
import pathlib
import threading

from bgservice_core import hookimpl


class MarkingService:
    def __init__(self, config):
        self.config = config

    def start(self):
        pass

    def stop(self):
        if os.environ.get("STOP_HANGS"):
            threading.Event().wait()
        pathlib.Path(os.environ["STOP_MARKER"]).write_text(self.config.node_id)


@hookimpl
def bgservice_build_service(config):
    return MarkingService(config)
"""


@pytest.fixture
def marking_backend(site_dir: Path) -> None:
    """Install backend ``marking``, whose stop() is observable."""
    install_distribution(
        site_dir,
        "bgservice-marking",
        entry_points={"marking": "marking"},
        modules={"marking.py": MARKING_MODULE},
    )


@pytest.fixture(autouse=True)
def _strict_runs(pytester: pytest.Pytester) -> None:
    """Run the inner sessions as strictly as ours: any warning is an error."""
    pytester.makeini("[pytest]\nfilterwarnings = error\naddopts = --strict-markers\n")


def test_plugin_is_advertised_in_the_pytest11_group() -> None:
    """pytest finds the plugin through the installed distribution's metadata."""
    (entry_point,) = importlib_metadata.entry_points(group="pytest11", name="bgservice")

    assert entry_point.value == "bgservice_core._pytest_plugin"
    assert entry_point.dist is not None
    assert entry_point.dist.name == "bgservice-core"


def test_plugin_offers_its_fixtures(pytester: pytest.Pytester) -> None:
    """pytest --fixtures lists every fixture of the kit."""
    result = pytester.runpytest_subprocess("--fixtures")

    for fixture in FIXTURES:
        result.stdout.fnmatch_lines([f"{fixture} -- *_pytest_plugin.py*"])


def test_an_unrelated_run_uses_no_fixture_of_the_plugin(
    pytester: pytest.Pytester,
) -> None:
    """No fixture is autouse: a test that asks for none gets none."""
    pytester.makepyfile("def test_plain(tmp_path):\n    assert tmp_path.is_dir()\n")

    result = pytester.runpytest_subprocess("--setup-show")

    result.assert_outcomes(passed=1)
    setups = [line for line in result.outlines if "SETUP" in line]
    assert setups
    assert not [line for line in setups if "bgservice" in line]


def test_an_unrelated_run_imports_nothing_of_the_kit(pytester: pytest.Pytester) -> None:
    """Loading the plugin imports neither the kit nor discovery or the CLI."""
    pytester.makepyfile(
        """
        import sys

        import pytest

        @pytest.mark.parametrize("module", [
            "bgservice_core.testing",
            "bgservice_core._conformance",
            "bgservice_core._discovery",
            "bgservice_core._opening",
            "importlib_metadata",
            "click",
            "tabulate",
        ])
        def test_not_imported(module):
            assert module not in sys.modules
        """
    )

    pytester.runpytest_subprocess().assert_outcomes(passed=7)


def test_asking_for_a_fixture_imports_the_kit(pytester: pytest.Pytester) -> None:
    """The kit arrives with the first fixture a test asks for."""
    pytester.makepyfile(
        """
        import sys

        def test_gate(bgservice_gate):
            assert "bgservice_core.testing" in sys.modules
            bgservice_gate.assert_no_calls()
        """
    )

    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_the_plugin_can_be_turned_off(pytester: pytest.Pytester) -> None:
    """-p no:bgservice removes the fixtures."""
    pytester.makepyfile("def test_gate(bgservice_gate):\n    pass\n")

    result = pytester.runpytest_subprocess("-p", "no:bgservice")

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'bgservice_gate' not found*"])


def test_config_fixture_is_wired_to_the_gate_and_crash_fixtures(
    pytester: pytest.Pytester,
) -> None:
    """bgservice_config carries the same gate and crash recorder the test gets."""
    pytester.makepyfile(
        """
        def test_wiring(bgservice_config, bgservice_gate, bgservice_crashes):
            assert bgservice_config.gate is bgservice_gate
            bgservice_config.for_backend("x").report_failure(RuntimeError("boom"))
            assert bgservice_crashes.crashes[0][0] == "x"
        """
    )

    pytester.runpytest_subprocess().assert_outcomes(passed=1)


@pytest.mark.usefixtures("marking_backend")
def test_backend_fixture_stops_what_it_built(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A service built through bgservice_backend is stopped at teardown."""
    marker = tmp_path / "stopped"
    monkeypatch.setenv("STOP_MARKER", str(marker))
    pytester.makepyfile(
        """
        def test_build(bgservice_backend):
            service = bgservice_backend("marking")
            assert type(service).__module__ == "marking"
            service.start()
        """
    )

    pytester.runpytest_subprocess().assert_outcomes(passed=1)

    assert marker.read_text() == "node-1.test.example"


@pytest.mark.usefixtures("marking_backend")
def test_backend_fixture_fails_a_test_whose_service_does_not_drain(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop() that outlives the drain timeout errors the test at teardown."""
    monkeypatch.setenv("STOP_MARKER", str(tmp_path / "stopped"))
    monkeypatch.setenv("STOP_HANGS", "1")
    pytester.makepyfile(
        """
        def test_build(bgservice_backend):
            bgservice_backend.drain_timeout = 0.3
            bgservice_backend("marking").start()
        """
    )

    result = pytester.runpytest_subprocess()

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*AssertionError: service 'marking' did not stop within 0.3s"]
    )


@pytest.mark.usefixtures("marking_backend")
def test_conformance_fixture_checks_in_a_temporary_directory(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bgservice_conformance runs the check with tmp_path as working directory."""
    monkeypatch.setenv("STOP_MARKER", "stopped-here")
    pytester.makepyfile(
        """
        import os

        def test_conforms(bgservice_conformance, tmp_path):
            report = bgservice_conformance("marking")
            assert report.passed
            assert (tmp_path / "stopped-here").exists()
            assert os.getcwd() == str(tmp_path)
        """
    )

    pytester.runpytest_subprocess().assert_outcomes(passed=1)


def test_conformance_fixture_fails_with_the_report(pytester: pytest.Pytester) -> None:
    """A failed check fails the test, with every check in the output."""
    pytester.makepyfile(
        """
        def test_conforms(bgservice_conformance):
            bgservice_conformance("no-such-backend")
        """
    )

    result = pytester.runpytest_subprocess()

    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*ConformanceError: backend 'no-such-backend' does not conform*",
            "*FAILED  entry point resolves: no installed distribution advertises*",
            "*skipped  no thread survives the drain: an earlier check failed",
        ]
    )
