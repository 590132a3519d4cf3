"""Deciding, from balances and what is engaged, which gates to change."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Container, Mapping
from decimal import Decimal

from bgservice_credit_gate._engagements import Phase


@dataclasses.dataclass(frozen=True)
class Transition:
    """One Gate call to make.

    :param slug: the tenant.
    :param suspend: True to engage the gate, False to release it.
    :param balance: the balance that calls for it.
    :param phase: what was recorded for the tenant before, if anything.
    """

    slug: str
    suspend: bool
    balance: Decimal
    phase: Phase | None = None

    @property
    def intent(self) -> Phase:
        """The phase to record before calling the Gate."""
        return Phase.ENGAGING if self.suspend else Phase.RELEASING

    @property
    def verb(self) -> str:
        """``engage`` or ``release``, for messages."""
        return "engage" if self.suspend else "release"


def plan_transitions(
    balances: Mapping[str, Decimal],
    engagements: Mapping[str, Phase],
    threshold: Decimal,
) -> list[Transition]:
    """Return the Gate calls due, in slug order; none in a steady state.

    A tenant at or below ``threshold`` is engaged unless it is recorded as
    engaged. A tenant above it is released only if a record says this service
    engaged it, or may have: an unfinished engage or release is finished or
    reversed, never assumed. A tenant missing from the ledger is left as it is.
    """
    transitions = []
    for slug, balance in balances.items():
        phase = engagements.get(slug)
        if balance <= threshold:
            if phase is not Phase.ENGAGED:
                transitions.append(Transition(slug, True, balance, phase))
        elif phase is not None:
            transitions.append(Transition(slug, False, balance, phase))

    # Only the changes are sorted, not the balances: in a steady state none.
    transitions.sort(key=operator.attrgetter("slug"))
    return transitions


def unlisted_engagements(
    listed: Container[str], engagements: Mapping[str, Phase]
) -> list[str]:
    """Return the tenants recorded here that the ledger no longer lists.

    :param listed: the tenants with a ledger row, readable or not.
    """
    return sorted(slug for slug in engagements if slug not in listed)
