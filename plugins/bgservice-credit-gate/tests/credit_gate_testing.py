"""Helpers for the credit-gate tests: a recording Gate, the databases."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from bgservice_credit_gate._locations import parse_location
from bgservice_credit_gate.billing import set_balances

NODE_ID = "node-1.test.example"

#: Settings the tests set themselves: inherited ones would change outcomes.
SETTINGS = (
    "BGSERVICE_CREDIT_PERIOD",
    "BGSERVICE_CREDIT_THRESHOLD",
    "BGSERVICE_CREDIT_DENY_STATUS",
    "BGSERVICE_CREDIT_DSN",
    "BGSERVICE_CREDIT_STATE_DSN",
    "BGSERVICE_CREDIT_MAX_BACKOFF",
    "BGSERVICE_DB",
)

#: One Gate call: slug, suspended, deny status, deny reason.
Call = tuple[str, bool, int, str]


def engage(slug: str, status: int = 402) -> Call:
    """The Gate call that suspends ``slug`` for lack of credit."""
    return (slug, True, status, "credit_exhausted")


def release(slug: str, status: int = 402) -> Call:
    """The Gate call that readmits ``slug``."""
    return (slug, False, status, "credit_exhausted")


class RecordingGate:
    """A thread-safe Gate that records its calls, and can fail or wait.

    :param delay: seconds each call takes, to widen races.
    :ivar failures: slug to the exception its calls raise, until removed.
    :ivar proceed: when set, each call sets ``entered`` and waits for it.
    """

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[Call] = []
        self.failures: dict[str, Exception] = {}
        self.delay = delay
        self.entered = threading.Event()
        self.proceed: threading.Event | None = None
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            if self.proceed is not None:
                self.entered.set()
                self.proceed.wait(timeout=30)
            if slug in self.failures:
                raise self.failures[slug]
            with self._lock:
                self.calls.append((slug, suspended, deny_status, deny_reason))
        finally:
            with self._lock:
                self.in_flight -= 1

    def take(self) -> list[Call]:
        """Return the calls recorded since the last take, and forget them."""
        with self._lock:
            calls, self.calls = self.calls, []
        return calls


class Databases:
    """Where a test's ledger and engagement store are, as setting values."""

    def __init__(self, kind: str, ledger: str, engagements: str) -> None:
        self.kind = kind
        self.ledger = ledger
        self.engagements = engagements

    def set_balances(self, **balances: int | str) -> None:
        """Write balances into the ledger, as the billing system would."""
        location = parse_location("BGSERVICE_CREDIT_DSN", self.ledger)
        set_balances(location, {k: Decimal(v) for k, v in balances.items()})

    def execute(self, statement: str) -> None:
        """Run one SQL statement on the ledger, as the billing system might."""
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(self.ledger, autocommit=True) as server:
                server.execute(statement)
            return
        connection = sqlite3.connect(self.ledger)
        try:
            with connection:
                connection.execute(statement)
        finally:
            connection.close()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` until it holds; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"still false after {timeout:g}s: {condition.__doc__}")
        time.sleep(0.01)
