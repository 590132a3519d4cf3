"""The credit-gate loop: read balances, change only gates that must change."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from decimal import Decimal

from bgservice_core import Config, LoopService
from bgservice_credit_gate._engagements import (
    EngagementSession,
    EngagementStore,
    Phase,
    open_engagement_store,
)
from bgservice_credit_gate._locations import Location, UnreachableDatabaseError
from bgservice_credit_gate._planning import (
    Transition,
    plan_transitions,
    unlisted_engagements,
)
from bgservice_credit_gate._retry import RetrySchedule
from bgservice_credit_gate.ledger import LedgerSnapshot, select_balances

#: The deny reason of every suspension this service makes.
DENY_REASON = "credit_exhausted"

# The retry schedule's key for a tick that could not read or write a database.
_DATABASES = "databases"


@dataclasses.dataclass(frozen=True)
class CreditGateSettings:
    """The service's validated settings.

    :param period: seconds between ticks.
    :param threshold: a balance at or below it suspends the tenant.
    :param deny_status: the HTTP status a suspended tenant's requests get.
    :param ledger: the billing system's balances, read only.
    :param engagements: where the service records what it engaged.
    :param max_backoff: the longest wait before retrying a failure.
    """

    period: float
    threshold: Decimal
    deny_status: int
    ledger: Location
    engagements: Location
    max_backoff: float


class CreditGateService(LoopService):
    """Suspend tenants out of credit through the Gate; readmit them topped up.

    Each tick holds the engagement store's tick lock, so across a fleet one
    node at a time decides and calls the Gate. Before each Gate call the
    intended phase is recorded; after it, the outcome. A node that dies in
    between leaves a record that a later tick, on any node, finishes: at least
    once, never lost. Only a Gate call that took effect and whose outcome was
    not yet recorded is ever repeated.

    :param config: the chassis' configuration; ``config.gate`` is called.
    :param settings: the validated settings.
    :param clock: seconds, for the retry delays; monotonic by default.
    """

    def __init__(
        self,
        config: Config,
        settings: CreditGateSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(config, settings.period)
        self.settings = settings
        self.store: EngagementStore = open_engagement_store(
            settings.engagements, config.node_id
        )
        self._tenant_retries = RetrySchedule(
            settings.period, settings.max_backoff, clock
        )
        self._database_retries = RetrySchedule(
            settings.period, settings.max_backoff, clock
        )
        self._reported_unlisted: set[str] = set()

    def setup(self) -> None:
        self.logger.info(
            "checking credit every %gs in %s; suspending at or below %s "
            "with %d; engagements kept in %s",
            self.period,
            self.settings.ledger,
            self.settings.threshold,
            self.settings.deny_status,
            self.settings.engagements,
        )

    def tick(self) -> None:
        """Run one round, unless the databases failed recently."""
        if not self._database_retries.due(_DATABASES):
            return
        try:
            self._tick_holding_lock()
        except UnreachableDatabaseError as err:
            delay = self._database_retries.failed(_DATABASES)
            self.logger.warning("%s; retrying in %gs", err, delay)
            return

        failures = self._database_retries.succeeded(_DATABASES)
        if failures:
            self.logger.info(
                "the credit ledger and engagement store work again after %d "
                "failed attempt(s)",
                failures,
            )

    def _tick_holding_lock(self) -> None:
        with self.store.session() as session:
            if session is None:
                self.logger.debug("another node holds the tick; skipped")
                return
            engagements = session.load()
            snapshot = self._read_ledger(session, engagements)
            self._report_oddities(snapshot, engagements)

            transitions = plan_transitions(
                snapshot.balances, engagements, self.settings.threshold
            )
            self.logger.debug(
                "read %d ledger row(s) out of credit, unreadable or recorded: "
                "%d gate change(s) due",
                len(snapshot.balances) + len(snapshot.unreadable),
                len(transitions),
            )
            self._apply_all(session, transitions)

    def _read_ledger(
        self, session: EngagementSession, engagements: dict[str, Phase]
    ) -> LedgerSnapshot:
        # Through the session's connection when the ledger shares its database:
        # a PostgreSQL connection costs more than a small ledger's whole read.
        ledger = self.settings.ledger
        return select_balances(
            ledger,
            self.settings.threshold,
            engagements,
            connection=session.connection_to(ledger),
        )

    def _apply_all(
        self, session: EngagementSession, transitions: list[Transition]
    ) -> None:
        # A stop requested meanwhile lets the whole tick finish: the chassis'
        # drain deadline bounds it, and a tick cut short by that deadline is
        # redone from the records and the ledger by the next tick, on any node.
        for transition in transitions:
            if self._tenant_retries.due(transition.slug):
                self._apply(session, transition)

    def _apply(
        self,
        session: EngagementSession,
        transition: Transition,
    ) -> None:
        """Record the intent, call the Gate, record the outcome."""
        slug, suspend = transition.slug, transition.suspend
        if transition.phase is not transition.intent:
            session.record(slug, transition.intent)

        try:
            status = self.settings.deny_status
            self.config.gate.set_gate(slug, suspend, status, DENY_REASON)
        except Exception as err:  # noqa: BLE001 - retried later; others go on
            delay = self._tenant_retries.failed(slug)
            self.logger.warning(
                "could not %s the gate of tenant %r (balance %s): %s: %s; "
                "retrying in %gs",
                transition.verb,
                slug,
                transition.balance,
                type(err).__name__,
                self._scrub(str(err)),
                delay,
            )
            return

        # The window: a Gate call that took effect, not yet recorded. A node
        # dying here leaves the intent, so the call is made once more.
        if suspend:
            session.record(slug, Phase.ENGAGED)
        else:
            session.forget(slug)
        self._tenant_retries.succeeded(slug)
        self._log_change(transition)

    def _log_change(self, transition: Transition) -> None:
        if transition.suspend:
            self.logger.info(
                "suspended tenant %r: balance %s is at or below %s",
                transition.slug,
                transition.balance,
                self.settings.threshold,
            )
        else:
            self.logger.info(
                "readmitted tenant %r: balance %s is above %s",
                transition.slug,
                transition.balance,
                self.settings.threshold,
            )

    def _report_oddities(
        self, snapshot: LedgerSnapshot, engagements: dict[str, Phase]
    ) -> None:
        for slug, value in sorted(snapshot.unreadable.items()):
            self.logger.warning(
                "ledger row of tenant %r has balance %r, which is no number; "
                "the tenant is left as it is",
                slug,
                value,
            )
        # Once per tenant and process: it stays true every tick until fixed.
        for slug in unlisted_engagements(snapshot, engagements):
            if slug not in self._reported_unlisted:
                self._reported_unlisted.add(slug)
                self.logger.warning(
                    "tenant %r, whose gate this service engaged, is not in "
                    "the ledger any more; it stays suspended until it is",
                    slug,
                )

    def _scrub(self, text: str) -> str:
        text = self.settings.ledger.scrub(text)
        return self.settings.engagements.scrub(text)
