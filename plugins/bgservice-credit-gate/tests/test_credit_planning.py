"""The transition logic and retry delays, with a recording Gate, fake time."""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

import pytest
from bgservice_credit_gate import CreditGateService, CreditGateSettings
from bgservice_credit_gate._engagements import Phase
from bgservice_credit_gate._locations import parse_location
from bgservice_credit_gate._planning import (
    Transition,
    plan_transitions,
    unlisted_engagements,
)
from bgservice_credit_gate._retry import RetrySchedule
from bgservice_credit_gate.billing import set_balances
from bgservice_credit_gate.ledger import as_decimal
from credit_gate_testing import RecordingGate, engage

import bgservice_core

ZERO = Decimal(0)


@pytest.mark.parametrize(
    ("balance", "phase", "expected"),
    [
        # Out of credit: engage unless already engaged.
        ("0", None, True),
        ("-1", Phase.ENGAGING, True),
        ("0", Phase.RELEASING, True),
        ("0", Phase.ENGAGED, None),
        # In credit: release only what this service engaged, or may have.
        ("1", None, None),
        ("1", Phase.ENGAGED, False),
        ("1", Phase.ENGAGING, False),
        ("0.01", Phase.RELEASING, False),
    ],
)
def test_each_balance_and_phase_plans_one_change_or_none(
    balance: str, phase: Phase | None, expected: bool | None
) -> None:
    """Only transitions are planned; an unfinished one ends or is reversed."""
    engagements = {} if phase is None else {"acme": phase}
    planned = plan_transitions({"acme": Decimal(balance)}, engagements, ZERO)

    if expected is None:
        assert planned == []
    else:
        due = Transition("acme", expected, Decimal(balance), phase)
        assert planned == [due]


def test_changes_are_planned_in_slug_order() -> None:
    """The plan is sorted, so that every node makes changes in one order."""
    balances = {"globex": ZERO, "acme": ZERO, "initech": Decimal(5)}
    planned = plan_transitions(balances, {"initech": Phase.ENGAGED}, ZERO)
    assert [(t.slug, t.verb) for t in planned] == [
        ("acme", "engage"),
        ("globex", "engage"),
        ("initech", "release"),
    ]


def test_a_tenant_missing_from_the_ledger_is_not_planned() -> None:
    """No balance means no decision, even for an engaged tenant."""
    engagements = {"gone": Phase.ENGAGED, "acme": Phase.ENGAGED}
    assert plan_transitions({"acme": ZERO}, engagements, ZERO) == []
    assert unlisted_engagements({"acme": ZERO}, engagements) == ["gone"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, Decimal(0)),
        (12, Decimal(12)),
        (0.1, Decimal("0.1")),
        (Decimal("-3.50"), Decimal("-3.50")),
        (" 7.25 ", Decimal("7.25")),
        ("lots", None),
        (None, None),
        (True, None),
        (float("nan"), None),
        (Decimal("Infinity"), None),
        (b"1", None),
    ],
)
def test_a_ledger_balance_is_read_as_a_finite_decimal(
    value: object, expected: Decimal | None
) -> None:
    """Numbers of every driver's types convert; anything else is no balance."""
    assert as_decimal(value) == expected


def test_retry_delays_double_up_to_the_cap() -> None:
    """The n-th failure waits first * 2**(n-1) seconds, at most the cap."""
    now = [0.0]
    schedule = RetrySchedule(30, 300, clock=lambda: now[0])
    delays = [schedule.failed("acme") for _ in range(7)]
    assert delays == [30, 60, 120, 240, 300, 300, 300]


def test_a_failing_key_is_due_again_after_its_delay_only() -> None:
    """Until its delay passes a key is not due; other keys are unaffected."""
    now = [100.0]
    schedule = RetrySchedule(10, 60, clock=lambda: now[0])
    schedule.failed("acme")

    assert (schedule.due("acme"), schedule.due("globex")) == (False, True)
    now[0] = 109.9
    assert schedule.due("acme") is False
    now[0] = 110.0
    assert schedule.due("acme") is True
    assert schedule.failing() == ["acme"]


def test_a_success_forgets_the_failures() -> None:
    """succeeded() reports the failures in a row and restarts the delays."""
    schedule = RetrySchedule(first_delay=1, max_delay=8, clock=lambda: 0.0)
    schedule.failed("acme")
    schedule.failed("acme")

    assert schedule.succeeded("acme") == 2
    assert schedule.succeeded("acme") == 0
    assert schedule.failed("acme") == 1


# -- the service, ticked by hand against a fake clock -------------------------


class Clock:
    """Seconds that pass only when a test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TimedGate(RecordingGate):
    """Also remembers when each call for one tenant was attempted."""

    def __init__(self, clock: Clock, watched: str) -> None:
        super().__init__()
        self.clock = clock
        self.watched = watched
        self.attempts: list[float] = []

    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        if slug == self.watched:
            self.attempts.append(self.clock())
        super().set_gate(slug, suspended, deny_status, deny_reason)


def _service(
    tmp_path: Path,
    gate: RecordingGate,
    clock: Clock,
) -> CreditGateService:
    ledger = parse_location("LEDGER", str(tmp_path / "ledger.db"))
    settings = CreditGateSettings(
        period=1.0,
        threshold=ZERO,
        deny_status=402,
        ledger=ledger,
        engagements=parse_location("STATE", str(tmp_path / "state.db")),
        max_backoff=4.0,
    )
    logger = logging.getLogger("tests.credit-gate")
    config = bgservice_core.Config(logger=logger, gate=gate, node_id="node-1")
    return CreditGateService(config, settings, clock=clock)


def _tick_every_second(
    service: CreditGateService,
    clock: Clock,
    until: int,
) -> None:
    for second in range(until + 1):
        clock.now = float(second)
        service.tick()


def test_a_failing_tenant_backs_off_while_the_others_go_on(
    tmp_path: Path,
) -> None:
    """Retries come after 1, 2, 4, then every 4 s; one engage for the rest."""
    clock = Clock()
    gate = TimedGate(clock, watched="acme")
    gate.failures["acme"] = RuntimeError("locked")
    ledger = parse_location("LEDGER", str(tmp_path / "ledger.db"))
    set_balances(ledger, {"acme": ZERO, "globex": ZERO})

    _tick_every_second(_service(tmp_path, gate, clock), clock, until=16)

    assert gate.attempts == [0, 1, 3, 7, 11, 15]
    assert gate.take() == [engage("globex")]


def test_an_outage_backs_off_and_ends_with_a_success(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreadable ledger is tried at 0, 1, 3, 7 and 11 s, then works."""
    clock = Clock()
    gate = RecordingGate()
    service = _service(tmp_path, gate, clock)
    with caplog.at_level(logging.INFO, logger="tests.credit-gate"):
        _tick_every_second(service, clock, until=10)
        ledger = parse_location("LEDGER", str(tmp_path / "ledger.db"))
        set_balances(ledger, {"acme": ZERO})
        clock.now = 11.0
        service.tick()

    outages = [m for m in caplog.messages if "does not exist" in m]
    assert [m.rsplit("; ", 1)[1] for m in outages] == [
        "retrying in 1s",
        "retrying in 2s",
        "retrying in 4s",
        "retrying in 4s",
    ]
    assert gate.take() == [engage("acme")]
    assert caplog.messages[-1] == (
        "the credit ledger and engagement store work again after 4 failed attempt(s)"
    )
