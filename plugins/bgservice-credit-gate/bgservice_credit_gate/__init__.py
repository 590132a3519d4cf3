"""The ``credit-gate`` backend: suspends tenants out of credit until topped up.

Every period it reads the billing system's credit ledger (see
:mod:`bgservice_credit_gate.ledger`). A tenant whose balance is at or below the
threshold gets its gate engaged through the chassis' Gate, with the deny status
and the reason ``credit_exhausted``; once the balance rises above the threshold
the gate is released. Only gates this service engaged are ever released, and
only transitions call the Gate: a steady state makes no calls.

What it engaged is recorded in the engagement store, so that a restart, even
after ``kill -9``, neither loses a pending release nor repeats a change already
recorded. Several chassis nodes may run it against one PostgreSQL database: a
tick holds a lock there, so one node at a time makes the changes.

Settings (environment variables):

``BGSERVICE_CREDIT_PERIOD``
    Seconds between ticks; a positive number, default 30.
``BGSERVICE_CREDIT_THRESHOLD``
    A decimal number, default 0: a balance at or below it suspends the tenant.
``BGSERVICE_CREDIT_DENY_STATUS``
    The HTTP status a suspended tenant's requests get, 400 to 599; default 402.
``BGSERVICE_CREDIT_DSN``
    The ledger: a SQLite file (or ``sqlite:///path``) or a ``postgresql://``
    URL; default ``BGSERVICE_DB``, else ``bgservice.db``.
``BGSERVICE_CREDIT_STATE_DSN``
    The engagement store, in the same forms; default ``BGSERVICE_DB``, else
    ``bgservice.db``: the chassis' own database, which a fleet shares.
``BGSERVICE_CREDIT_MAX_BACKOFF``
    The longest wait, in seconds, before retrying a failed Gate call or an
    unreachable database; default 300.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal

from bgservice_core import (
    Config,
    SettingError,
    hookimpl,
    read_integer,
    read_seconds,
    read_text,
)
from bgservice_credit_gate._locations import (
    Location,
    UnreachableDatabaseError,
    parse_location,
)
from bgservice_credit_gate._service import (
    DENY_REASON,
    CreditGateService,
    CreditGateSettings,
)

__all__ = [
    "DENY_REASON",
    "CreditGateService",
    "CreditGateSettings",
    "Location",
    "UnreachableDatabaseError",
    "bgservice_build_service",
    "read_settings",
]

PERIOD_VARIABLE = "BGSERVICE_CREDIT_PERIOD"
THRESHOLD_VARIABLE = "BGSERVICE_CREDIT_THRESHOLD"
DENY_STATUS_VARIABLE = "BGSERVICE_CREDIT_DENY_STATUS"
LEDGER_VARIABLE = "BGSERVICE_CREDIT_DSN"
STATE_VARIABLE = "BGSERVICE_CREDIT_STATE_DSN"
MAX_BACKOFF_VARIABLE = "BGSERVICE_CREDIT_MAX_BACKOFF"
#: The chassis' database setting, the default for both databases.
CHASSIS_DB_VARIABLE = "BGSERVICE_DB"
DEFAULT_DB = "bgservice.db"


@hookimpl
def bgservice_build_service(config: Config) -> CreditGateService:
    """Build the credit-gate service from its environment settings."""
    return CreditGateService(config, read_settings())


def read_settings() -> CreditGateSettings:
    """Read and check every setting.

    :raises SettingError: a setting is invalid; the message names the variable
        and its value, without any password.
    """
    return CreditGateSettings(
        period=read_seconds(PERIOD_VARIABLE, 30.0),
        threshold=read_decimal(THRESHOLD_VARIABLE, Decimal(0)),
        deny_status=read_integer(
            DENY_STATUS_VARIABLE,
            402,
            minimum=400,
            maximum=599,
        ),
        ledger=_read_location(LEDGER_VARIABLE),
        engagements=_read_location(STATE_VARIABLE),
        max_backoff=read_seconds(MAX_BACKOFF_VARIABLE, 300.0),
    )


_PLAIN_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def read_decimal(variable: str, default: Decimal) -> Decimal:
    """Return a finite decimal number from ``variable``, or ``default``.

    :raises SettingError: the value is not such a number.
    """
    raw = os.environ.get(variable)
    if raw is None:
        return default
    expected = f"a decimal number, such as {default} or 12.50"
    # Plain ASCII notation only: Decimal() would also take "1_0", other
    # scripts' digits and exponents such as "1e400", none of which an operator
    # writing a credit threshold means.
    if not _PLAIN_DECIMAL.fullmatch(raw.strip()):
        raise SettingError(variable, raw, expected)
    return Decimal(raw.strip())


def _read_location(variable: str) -> Location:
    """Read a database setting, defaulting to the chassis' own database."""
    if variable in os.environ:
        return parse_location(variable, read_text(variable, DEFAULT_DB))
    chassis_db = os.environ.get(CHASSIS_DB_VARIABLE, "").strip()
    if chassis_db:
        # Named as the variable the value came from, so an error points there.
        return parse_location(CHASSIS_DB_VARIABLE, chassis_db)
    return parse_location(variable, DEFAULT_DB)
