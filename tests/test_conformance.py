"""The conformance check against installed backends that break one rule each."""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from bgservice_core.testing import (
    ConformanceError,
    ConformanceReport,
    Status,
    check_conformance,
)
from tests.distributions import install_distribution

#: What every backend below shares: a service whose methods the test replaces.
PRELUDE = """
import threading

from bgservice_core import LoopService, hookimpl, read_seconds

RELEASE = threading.Event()


class Ticker(LoopService):
    def tick(self):
        pass


def build(config):
    return Ticker(config, read_seconds("TICKER_PERIOD", 60.0))


@hookimpl
def bgservice_build_service(config):
    return build(config)
"""

BAD_PERIOD = {"TICKER_PERIOD": "abc"}

ALL_CHECKS = [
    "entry point resolves",
    "hook validates",
    "rejects TICKER_PERIOD='abc'",
    "stop() before start() is harmless",
    "builds with valid settings",
    "start() returns promptly",
    "stop() drains promptly",
    "stop() twice is harmless",
    "reports no crash while running",
    "no thread survives the drain",
]


InstallTicker = Callable[..., None]


@pytest.fixture
def install_ticker(site_dir: Path) -> Iterator[InstallTicker]:
    """Install backend ``ticker``: PRELUDE, then the source given, which may
    redefine ``build`` or ``Ticker``. Threads it left waiting are released after.
    """
    modules: list[str] = []

    def install(
        extra: str = "", *, module: str = "ticker", prelude: bool = True
    ) -> None:
        source = (PRELUDE if prelude else "") + textwrap.dedent(extra)
        install_distribution(
            site_dir,
            f"bgservice-{module}",
            entry_points={"ticker": module},
            modules={f"{module}.py": source},
        )
        modules.append(module)

    yield install
    for module in modules:
        release = getattr(sys.modules.get(module), "RELEASE", None)
        if release is not None:
            release.set()


def failing(
    bad_settings: Sequence[Mapping[str, str | None]] = (BAD_PERIOD,),
    environment: Mapping[str, str | None] | None = None,
) -> dict[str, tuple[Status, str]]:
    """Run the check on ``ticker``, expecting failure; return each check's outcome."""
    with pytest.raises(ConformanceError) as caught:
        check_conformance(
            "ticker",
            bad_settings=bad_settings,
            environment=environment,
            start_timeout=0.3,
            drain_timeout=0.3,
        )
    assert str(caught.value) == caught.value.report.describe()
    return outcomes(caught.value.report)


def outcomes(report: ConformanceReport) -> dict[str, tuple[Status, str]]:
    """Each check's status and detail, by check."""
    return {r.check: (r.status, r.detail) for r in report.results}


def failed(results: dict[str, tuple[Status, str]]) -> dict[str, str]:
    """The failed checks' details, by check."""
    return {
        check: detail
        for check, (status, detail) in results.items()
        if status is Status.FAILED
    }


def test_a_well_behaved_backend_passes_every_check(
    install_ticker: InstallTicker,
) -> None:
    """A LoopService backend that validates its setting passes all checks."""
    install_ticker()

    report = check_conformance("ticker", bad_settings=[BAD_PERIOD])

    assert report.passed
    assert [r.check for r in report.results] == ALL_CHECKS
    assert outcomes(report)["rejects TICKER_PERIOD='abc'"] == (
        Status.PASSED,
        "TICKER_PERIOD='abc' is invalid: expected a positive number of seconds, "
        "such as 60",
    )


def test_a_missing_backend_fails_with_every_check_listed(site_dir: Path) -> None:
    """A name nothing installs fails the first check and skips the rest."""
    with pytest.raises(ConformanceError) as caught:
        check_conformance("ticker", bad_settings=[BAD_PERIOD])

    assert str(caught.value).splitlines() == [
        "backend 'ticker' does not conform to the service contract:",
        " FAILED  entry point resolves: no installed distribution advertises "
        "'ticker' in the entry-point group 'bgservice.backends'; install the "
        "backend's distribution (pip install -e .) and check the name in its "
        "entry-point table",
        "skipped  hook validates: an earlier check failed",
        "skipped  rejects TICKER_PERIOD='abc': an earlier check failed",
        "skipped  stop() before start() is harmless: an earlier check failed",
        "skipped  builds with valid settings: an earlier check failed",
        "skipped  start() returns promptly: an earlier check failed",
        "skipped  stop() drains promptly: an earlier check failed",
        "skipped  stop() twice is harmless: an earlier check failed",
        "skipped  reports no crash while running: an earlier check failed",
        "skipped  no thread survives the drain: an earlier check failed",
    ]


def test_two_distributions_of_one_name_fail_the_entry_point_check(
    install_ticker: InstallTicker,
) -> None:
    """A name two distributions advertise is a conflict, named with both."""
    install_ticker(module="ticker_a")
    install_ticker(module="ticker_b")

    assert failed(failing())["entry point resolves"] == (
        "2 distributions advertise 'ticker': distribution bgservice-ticker_a 1.0: "
        "ticker_a; distribution bgservice-ticker_b 1.0: ticker_b"
    )


def test_an_import_failure_fails_the_entry_point_check(
    install_ticker: InstallTicker,
) -> None:
    """A module that cannot be imported fails with the import error."""
    install_ticker("raise ImportError('needs libticker')")

    results = failing()

    assert failed(results) == {
        "entry point resolves": "importing 'ticker' failed: ImportError: needs "
        "libticker"
    }
    assert results["hook validates"][0] is Status.SKIPPED


def test_a_module_without_the_hook_fails_hook_validation(
    install_ticker: InstallTicker,
) -> None:
    """A module with no bgservice_build_service fails the hook check."""
    install_ticker("def build_service(config):\n    pass\n", prelude=False)

    assert failed(failing()) == {
        "hook validates": "'ticker' implements no 'bgservice_build_service' hook; "
        "define 'def bgservice_build_service(config)' there and mark it with "
        "@bgservice_core.hookimpl"
    }


def test_a_bad_setting_that_is_accepted_fails(install_ticker: InstallTicker) -> None:
    """A constructor that ignores its setting builds a service: a failure."""
    install_ticker(
        """
        def build(config):
            return Ticker(config, 60.0)
        """
    )

    assert failed(failing()) == {
        "rejects TICKER_PERIOD='abc'": "it built a service all the same; read and "
        "validate settings in bgservice_build_service and raise "
        "bgservice_core.SettingError for a bad value"
    }


@pytest.mark.parametrize(
    ("raised", "problem"),
    [
        (
            "ValueError('the period is wrong')",
            "the error does not name TICKER_PERIOD: ValueError: the period is wrong",
        ),
        (
            "ValueError('TICKER_PERIOD is wrong')",
            "the error does not quote the bad value: ValueError: TICKER_PERIOD is "
            "wrong",
        ),
        (
            "SystemExit(2)",
            "the error does not name TICKER_PERIOD: SystemExit: 2",
        ),
    ],
)
def test_an_unclear_settings_error_fails(
    install_ticker: InstallTicker, raised: str, problem: str
) -> None:
    """The error for a bad setting must name the variable and quote the value."""
    install_ticker(
        f"""
        import os

        def build(config):
            if os.environ.get("TICKER_PERIOD"):
                raise {raised}
            return Ticker(config, 60.0)
        """
    )

    assert failed(failing()) == {"rejects TICKER_PERIOD='abc'": problem}


def test_a_missing_setting_needs_only_to_be_named(
    install_ticker: InstallTicker,
) -> None:
    """For an unset variable (None), naming it is clear enough."""
    install_ticker(
        """
        import os

        from bgservice_core import SettingError

        def build(config):
            if "TICKER_URL" not in os.environ:
                raise SettingError("TICKER_URL", "", "a URL; it has no default")
            return Ticker(config, 60.0)
        """
    )

    report = check_conformance(
        "ticker",
        bad_settings=[{"TICKER_URL": None}],
        environment={"TICKER_URL": "http://ticker.test"},
    )

    assert outcomes(report)["rejects unset TICKER_URL"][0] is Status.PASSED


def test_settings_are_restored_after_the_check(
    install_ticker: InstallTicker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither the environment nor the bad settings outlive the check."""
    install_ticker()
    monkeypatch.setenv("TICKER_PERIOD", "30")
    monkeypatch.delenv("TICKER_EXTRA", raising=False)

    check_conformance(
        "ticker",
        bad_settings=[BAD_PERIOD],
        environment={"TICKER_PERIOD": None, "TICKER_EXTRA": "1"},
    )

    assert os.environ["TICKER_PERIOD"] == "30"
    assert "TICKER_EXTRA" not in os.environ


def test_a_service_that_cannot_be_built_skips_the_lifecycle(
    install_ticker: InstallTicker,
) -> None:
    """Construction failing with the settings given skips the running checks."""
    install_ticker()

    results = failing(bad_settings=[], environment=BAD_PERIOD)

    assert failed(results) == {
        "stop() before start() is harmless": results[
            "stop() before start() is harmless"
        ][1],
        "builds with valid settings": results["builds with valid settings"][1],
    }
    assert results["builds with valid settings"][1].startswith(
        "backend 'ticker' could not build its service: SettingError: "
        "TICKER_PERIOD='abc' is invalid"
    )
    assert results["no thread survives the drain"][0] is Status.SKIPPED


def test_a_start_that_blocks_fails(install_ticker: InstallTicker) -> None:
    """start() must hand the work to a thread and return."""
    install_ticker(
        """
        class Ticker(Ticker):
            def start(self):
                RELEASE.wait()
        """
    )

    results = failing()

    assert failed(results) == {
        "start() returns promptly": "start() did not return within 0.3s; start a "
        "thread and return, leaving the work to it"
    }
    assert results["stop() drains promptly"][0] is Status.SKIPPED


def test_a_start_that_raises_fails(install_ticker: InstallTicker) -> None:
    """An exception from start() is reported with its message."""
    install_ticker(
        """
        class Ticker(Ticker):
            def start(self):
                raise RuntimeError("no database")
        """
    )

    assert failed(failing()) == {
        "start() returns promptly": "start() raised RuntimeError: no database"
    }


def test_a_stop_that_does_not_drain_fails(install_ticker: InstallTicker) -> None:
    """A stop() stuck behind a tick fails, and its thread survives."""
    install_ticker(
        """
        class Ticker(Ticker):
            def tick(self):
                RELEASE.wait()
        """
    )

    assert failed(failing()) == {
        "stop() drains promptly": "stop() did not return within 0.3s",
        "no thread survives the drain": "still running after stop() returned: "
        "'bgservice-loop-ticker'; stop() must end every thread the service "
        "started before it returns",
    }


def test_a_second_stop_that_raises_fails(install_ticker: InstallTicker) -> None:
    """stop() must be harmless to repeat."""
    install_ticker(
        """
        class Ticker(Ticker):
            def stop(self):
                if getattr(self, "stopped_once", False):
                    raise RuntimeError("already stopped")
                self.stopped_once = True
                super().stop()
        """
    )

    assert failed(failing()) == {
        "stop() twice is harmless": "stop() raised RuntimeError: already stopped"
    }


def test_a_stop_before_start_that_raises_fails(install_ticker: InstallTicker) -> None:
    """stop() on a service never started must be harmless."""
    install_ticker(
        """
        class Naive:
            def __init__(self, config):
                self.thread = None
                self.stopping = threading.Event()

            def start(self):
                self.thread = threading.Thread(target=self.stopping.wait)
                self.thread.start()

            def stop(self):
                self.stopping.set()
                self.thread.join()

        def build(config):
            read_seconds("TICKER_PERIOD", 60.0)
            return Naive(config)
        """
    )

    assert failed(failing()) == {
        "stop() before start() is harmless": "stop() raised AttributeError: "
        "'NoneType' object has no attribute 'join'"
    }


def test_a_thread_left_running_fails(install_ticker: InstallTicker) -> None:
    """A helper thread the service forgets to end is named."""
    install_ticker(
        """
        class Ticker(Ticker):
            def setup(self):
                threading.Thread(
                    target=RELEASE.wait, name="ticker-helper", daemon=True
                ).start()
        """
    )

    assert failed(failing()) == {
        "no thread survives the drain": "still running after stop() returned: "
        "'ticker-helper'; stop() must end every thread the service started "
        "before it returns"
    }


def test_a_crash_while_running_fails(install_ticker: InstallTicker) -> None:
    """A crash reported through Config.report_failure fails the check."""
    install_ticker(
        """
        class Ticker(Ticker):
            def start(self):
                # Reported before start() returns, so the check cannot miss it.
                reported = threading.Event()

                def crash():
                    self.config.report_failure(RuntimeError("tick failed"))
                    reported.set()

                threading.Thread(target=crash).start()
                reported.wait()
        """
    )

    assert failed(failing()) == {
        "reports no crash while running": "it reported RuntimeError: tick failed"
    }
