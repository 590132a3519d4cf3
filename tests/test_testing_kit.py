"""The testing kit: the recording gate, the crash recorder, the harness, the config."""

from __future__ import annotations

import importlib
import logging
import os
import threading
from pathlib import Path

import pytest

import bgservice_core
from bgservice_core.testing import (
    ADMITTED,
    DEFAULT_NODE_ID,
    SUSPENDED,
    BackendHarness,
    CrashRecorder,
    GateCall,
    RecordingGate,
    make_config,
    patched_environment,
    wait_until,
)
from tests.distributions import WELL_BEHAVED_MODULE, install_distribution

#: A service whose stop() waits for the module's RELEASE event, or raises.
STUBBORN_MODULE = """
import threading

from bgservice_core import hookimpl

RELEASE = threading.Event()
STOPPED = []


class StubbornService:
    def __init__(self, config):
        self.config = config

    def start(self):
        pass

    def stop(self):
        STOPPED.append(self.config.node_id)
        if self.config.node_id == "hangs":
            RELEASE.wait()
        if self.config.node_id == "raises":
            raise RuntimeError("the connection is gone")


@hookimpl
def bgservice_build_service(config):
    return StubbornService(config)
"""


class NothingService:
    """A service that does nothing, for in-process registration."""

    def __init__(self, config: bgservice_core.Config) -> None:
        self.config = config

    def start(self) -> None:
        """Do nothing."""

    def stop(self) -> None:
        """Do nothing."""


def install_stubborn(site: Path) -> None:
    """Install backend ``stubborn``, whose stop() the config's node id steers."""
    install_distribution(
        site,
        "bgservice-stubborn",
        entry_points={"stubborn": "stubborn"},
        modules={"stubborn.py": STUBBORN_MODULE},
    )


# -- RecordingGate -------------------------------------------------------------


def test_gate_records_every_call_in_order() -> None:
    """Each set_gate call is kept with its arguments, in call order."""
    gate = RecordingGate()

    gate.set_gate("acme", True, 402, "credit_exhausted")
    gate.set_gate("globex", False, 0, "")

    assert gate.calls == (
        GateCall("acme", True, 402, "credit_exhausted"),
        GateCall("globex", False, 0, ""),
    )
    assert gate.calls_for("acme") == [GateCall("acme", True, 402, "credit_exhausted")]
    assert gate.latest("nobody") is None


def test_gate_keeps_every_call_made_from_many_threads() -> None:
    """Concurrent calls are neither lost nor reordered within one thread."""
    gate = RecordingGate()

    def hammer(slug: str) -> None:
        for number in range(200):
            gate.set_gate(slug, number % 2 == 0, number, "reason")

    threads = [threading.Thread(target=hammer, args=(f"t{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(gate.calls) == 8 * 200
    for index in range(8):
        statuses = [call.deny_status for call in gate.calls_for(f"t{index}")]
        assert statuses == list(range(200))


def test_gate_transitions_collapse_repeated_states() -> None:
    """Suspending a suspended tenant again is no new transition."""
    gate = RecordingGate()
    for suspended in (True, True, False, False, True):
        gate.set_gate("acme", suspended, 402, "credit_exhausted")

    assert gate.transitions("acme") == [SUSPENDED, ADMITTED, SUSPENDED]
    gate.assert_transitions("acme", SUSPENDED, ADMITTED, SUSPENDED)
    assert gate.suspended_slugs() == ["acme"]


def test_gate_transition_mismatch_lists_the_calls() -> None:
    """A failed transition assertion says what happened and what was expected."""
    gate = RecordingGate()
    gate.set_gate("acme", True, 402, "credit_exhausted")

    with pytest.raises(AssertionError) as caught:
        gate.assert_transitions("acme", SUSPENDED, ADMITTED)

    assert str(caught.value) == (
        "tenant 'acme' went through ['suspended'], expected ['suspended', "
        "'admitted']; its gate calls: set_gate('acme', True, 402, 'credit_exhausted')"
    )


def test_gate_assert_suspended_checks_status_and_reason() -> None:
    """assert_suspended passes on a match and names each field that differs."""
    gate = RecordingGate()
    gate.set_gate("acme", True, 402, "credit_exhausted")
    gate.assert_suspended("acme", deny_status=402, deny_reason="credit_exhausted")

    with pytest.raises(AssertionError) as caught:
        gate.assert_suspended("acme", deny_status=403, deny_reason="banned")

    assert str(caught.value) == (
        "tenant 'acme' is not suspended as expected: deny_status=402 (expected "
        "403), deny_reason='credit_exhausted' (expected 'banned'); its last gate "
        "call: set_gate('acme', True, 402, 'credit_exhausted')"
    )


def test_gate_assert_admitted_and_suspended_fail_on_the_other_state() -> None:
    """Each state assertion fails, naming the state found, on the other state."""
    gate = RecordingGate()
    gate.set_gate("acme", False, 0, "")
    gate.assert_admitted("acme")

    with pytest.raises(AssertionError, match="is not suspended as expected: admitted"):
        gate.assert_suspended("acme")
    gate.set_gate("acme", True, 402, "credit_exhausted")
    with pytest.raises(AssertionError, match="is suspended, expected admitted"):
        gate.assert_admitted("acme")


def test_gate_assertion_on_a_tenant_never_gated_names_the_others() -> None:
    """Asserting on a tenant without calls lists the tenants that were gated."""
    gate = RecordingGate()
    gate.set_gate("globex", True, 402, "credit_exhausted")

    with pytest.raises(AssertionError) as caught:
        gate.assert_admitted("acme")

    assert str(caught.value) == (
        "tenant 'acme' was never gated, expected admitted; tenants gated: globex"
    )


def test_gate_assert_no_calls() -> None:
    """assert_no_calls passes on a fresh gate and lists calls otherwise."""
    gate = RecordingGate()
    gate.assert_no_calls()
    gate.set_gate("acme", True, 402, "x")

    with pytest.raises(AssertionError) as caught:
        gate.assert_no_calls()

    assert str(caught.value) == (
        "expected no gate calls, got set_gate('acme', True, 402, 'x')"
    )


def test_gate_wait_for_calls_returns_calls_made_by_another_thread() -> None:
    """wait_for_calls returns once a background thread has made the calls."""
    gate = RecordingGate()
    timer = threading.Timer(0.05, gate.set_gate, ("acme", True, 402, "x"))
    timer.start()

    calls = gate.wait_for_calls(1)

    timer.join()
    assert calls == (GateCall("acme", True, 402, "x"),)


def test_gate_wait_for_calls_times_out_with_what_arrived() -> None:
    """Too few calls within the timeout fail with the calls that did arrive."""
    gate = RecordingGate()
    gate.set_gate("acme", True, 402, "x")

    with pytest.raises(AssertionError) as caught:
        gate.wait_for_calls(2, timeout=0.05)

    assert str(caught.value) == (
        "expected at least 2 gate call(s) within 0.05s, got 1: "
        "set_gate('acme', True, 402, 'x')"
    )


def test_gate_fail_with_records_then_raises() -> None:
    """A gate told to fail still records the call, then raises the error."""
    error = ConnectionError("tenant database unreachable")
    gate = RecordingGate(fail_with=error)

    with pytest.raises(ConnectionError) as caught:
        gate.set_gate("acme", True, 402, "x")

    assert caught.value is error
    assert len(gate.calls) == 1
    gate.clear()
    assert not gate.calls


def test_gate_is_a_gate() -> None:
    """RecordingGate satisfies the Gate protocol."""
    assert isinstance(RecordingGate(), bgservice_core.Gate)


# -- CrashRecorder, make_config, wait_until ------------------------------------


def test_crash_recorder_collects_reports_from_config() -> None:
    """A crash reported through Config.report_failure reaches the recorder."""
    crashes = CrashRecorder()
    config = make_config(failure_handler=crashes).for_backend("cleanup")
    crashes.assert_no_crash()
    error = RuntimeError("disk full")

    config.report_failure(error)

    assert crashes.crashes == (("cleanup", error),)
    assert crashes.wait_for_crash(timeout=0.01) == ("cleanup", error)
    with pytest.raises(AssertionError) as caught:
        crashes.assert_no_crash()
    assert str(caught.value) == (
        "service 'cleanup' reported a crash: RuntimeError: disk full"
    )
    assert caught.value.__cause__ is error


def test_crash_recorder_wait_times_out() -> None:
    """Waiting for a crash that never comes fails after the timeout."""
    with pytest.raises(AssertionError, match=r"^no crash was reported within 0.01s$"):
        CrashRecorder().wait_for_crash(timeout=0.01)


def test_make_config_defaults() -> None:
    """make_config gives a recording gate, a test node id and a test logger."""
    config = make_config()

    assert isinstance(config.gate, RecordingGate)
    assert config.node_id == DEFAULT_NODE_ID
    assert config.logger is logging.getLogger("bgservice.test")
    assert config.failure_handler is None


def test_make_config_uses_what_it_is_given() -> None:
    """Every argument of make_config ends up in the Config."""
    gate, crashes, logger = RecordingGate(), CrashRecorder(), logging.getLogger("x")

    config = make_config(gate=gate, node_id="n", logger=logger, failure_handler=crashes)

    assert (config.gate, config.node_id, config.logger) == (gate, "n", logger)
    assert config.failure_handler is crashes


def test_wait_until_returns_once_true_and_fails_after_the_timeout() -> None:
    """wait_until polls a condition and names it when it gives up."""
    flag = threading.Event()
    threading.Timer(0.05, flag.set).start()
    wait_until(flag.is_set)

    def never() -> bool:
        return False

    with pytest.raises(AssertionError) as caught:
        wait_until(never, timeout=0.05)
    assert str(caught.value) == (
        "test_wait_until_returns_once_true_and_fails_after_the_timeout.<locals>."
        "never was still false after 0.05s"
    )


def test_patched_environment_sets_unsets_and_restores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Variables are set or unset inside the block and restored after it."""
    monkeypatch.setenv("KIT_KEPT", "before")
    monkeypatch.delenv("KIT_NEW", raising=False)

    with patched_environment({"KIT_KEPT": None, "KIT_NEW": "inside"}):
        assert "KIT_KEPT" not in os.environ
        assert os.environ["KIT_NEW"] == "inside"

    assert os.environ["KIT_KEPT"] == "before"
    assert "KIT_NEW" not in os.environ


# -- BackendHarness --------------------------------------------------------------


def test_harness_builds_through_the_entry_point_and_stops_at_close(
    site_dir: Path,
) -> None:
    """A built service comes from the installed module and is stopped on exit."""
    install_distribution(
        site_dir,
        "bgservice-quiet",
        entry_points={"quiet": "quiet"},
        modules={"quiet.py": WELL_BEHAVED_MODULE},
    )

    with BackendHarness() as harness:
        service = harness("quiet")
        service.start()
        assert type(service).__module__ == "quiet"

    assert service.stopped  # type: ignore[attr-defined]


def test_harness_stops_each_service_once_newest_first(site_dir: Path) -> None:
    """close() stops every service in reverse build order, and only once."""
    install_stubborn(site_dir)
    harness = BackendHarness()
    first = harness.build("stubborn", make_config(node_id="first"))
    harness.build("stubborn", make_config(node_id="second"))

    harness.close()
    harness.close()

    assert importlib.import_module("stubborn").STOPPED == ["second", "first"]
    assert first.config.node_id == "first"  # type: ignore[attr-defined]


def test_harness_refuses_an_in_process_registration() -> None:
    """A name only registered in-process is no installed entry point."""
    bgservice_core.register("kit-registered", NothingService)

    with pytest.raises(AssertionError) as caught:
        BackendHarness().build("kit-registered")

    assert str(caught.value) == (
        "backend 'kit-registered' is registered in-process, not installed: "
        "install its distribution (pip install -e .) so its entry point is used"
    )


@pytest.mark.usefixtures("site_dir")
def test_harness_passes_on_open_errors() -> None:
    """An unknown name fails as it would in bgservice run."""
    with pytest.raises(bgservice_core.UnknownBackendError):
        BackendHarness().build("kit-missing")


def test_harness_fails_when_a_stop_does_not_return_in_time(site_dir: Path) -> None:
    """close() fails, naming the service, when stop() outlives the drain timeout."""
    install_stubborn(site_dir)
    harness = BackendHarness(make_config(node_id="hangs"), drain_timeout=0.2)
    harness.build("stubborn")
    release = importlib.import_module("stubborn").RELEASE

    try:
        with pytest.raises(AssertionError) as caught:
            harness.close()
    finally:
        release.set()

    assert str(caught.value) == "service 'stubborn' did not stop within 0.2s"


def test_harness_fails_when_a_stop_raises(site_dir: Path) -> None:
    """close() fails with the stop()'s exception chained."""
    install_stubborn(site_dir)
    harness = BackendHarness(make_config(node_id="raises"))
    harness.build("stubborn")

    with pytest.raises(AssertionError) as caught:
        harness.close()

    assert str(caught.value) == (
        "service 'stubborn': stop() raised RuntimeError: the connection is gone"
    )
    assert isinstance(caught.value.__cause__, RuntimeError)
