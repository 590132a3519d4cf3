"""Where a database is: a SQLite file or a PostgreSQL URL, shown safely."""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bgservice_core import SettingError
from bgservice_core.dsn import is_postgres_url, redact_dsn, redact_secrets

if TYPE_CHECKING:
    import psycopg

    PostgresConnection = psycopg.Connection[Any]

#: The SQLite URL prefix, as SQLAlchemy spells it: sqlite:///relative.db or
#: sqlite:////absolute/path.db.
SQLITE_URL_PREFIX = "sqlite:///"

_EXPECTED = (
    "a SQLite file path, a sqlite:///path URL or a "
    "postgresql://user:password@host:port/database URL"
)


class UnreachableDatabaseError(Exception):
    """A ledger or engagement store could not be read or written this time.

    The message names the database without its password and scrubs the
    driver's own text too.

    :param role: what the database is to the service: ``"credit ledger"``.
    :param location: the database.
    :param reason: what went wrong, already scrubbed.
    """

    def __init__(self, role: str, location: Location, reason: str) -> None:
        self.role = role
        self.location = location
        self.reason = reason
        super().__init__(f"{role} {location} is unusable: {reason}")


class Location:
    """A database named by a setting: a SQLite file or a ``postgresql://`` URL.

    Its ``str`` and ``repr`` hide the password, so it may be logged as it is.

    :param variable: the environment variable the value came from.
    :param dsn: the value as given, password included.
    :param path: the SQLite file, or None for PostgreSQL.
    """

    def __init__(self, variable: str, dsn: str, path: Path | None) -> None:
        self.variable = variable
        self.dsn = dsn
        self.path = path

    @property
    def is_postgres(self) -> bool:
        """Whether this is a PostgreSQL database."""
        return self.path is None

    def __str__(self) -> str:
        return redact_dsn(self.dsn) if self.path is None else str(self.path)

    def __repr__(self) -> str:
        return f"Location({self.variable}={str(self)!r})"

    def scrub(self, text: str) -> str:
        """Return ``text`` with this location's password redacted."""
        return redact_secrets(text, self.dsn)

    @contextlib.contextmanager
    def errors_as(self, role: str) -> Iterator[None]:
        """Raise a driver error in the block as an unreachable database."""
        try:
            yield
        except sqlite3.Error as err:
            raise UnreachableDatabaseError(role, self, str(err)) from err
        except Exception as err:
            if not _is_psycopg_error(err):
                raise
            # Raised from None: a traceback must not show the unscrubbed text.
            reason = self._reason(err)
            raise UnreachableDatabaseError(role, self, reason) from None

    def _reason(self, error: Exception) -> str:
        # The first line says it; libpq's further lines only add hints and
        # the statement's text, which do not belong in a one-line log.
        lines = [line.strip() for line in self.scrub(str(error)).splitlines()]
        return next((line for line in lines if line), type(error).__name__)


def parse_location(variable: str, value: str) -> Location:
    """Check a database setting's value and return where it points.

    :raises SettingError: it names no usable database; the message shows the
        value without its password.
    """
    if is_postgres_url(value):
        _check_postgres_url(variable, value)
        return Location(variable, value, None)
    if value.startswith(SQLITE_URL_PREFIX):
        path = Path(value.removeprefix(SQLITE_URL_PREFIX))
    elif "://" in value:
        raise SettingError(variable, redact_dsn(value), _EXPECTED)
    else:
        path = Path(value)

    if path.is_dir():
        raise SettingError(variable, value, "a SQLite file, not a directory")
    if not path.parent.is_dir():
        missing = f"{path.parent} does not exist"
        expected = f"a SQLite file in an existing directory ({missing})"
        raise SettingError(variable, value, expected)
    return Location(variable, value, path)


def connect_postgres(dsn: str, timeout_seconds: float) -> PostgresConnection:
    """Open an autocommit connection whose statements time out too.

    A stuck statement would hold up the tick, and with it the chassis' drain.
    """
    import psycopg

    connection = psycopg.connect(
        dsn, connect_timeout=int(timeout_seconds), autocommit=True
    )
    milliseconds = int(timeout_seconds * 1000)
    try:
        connection.execute(f"SET statement_timeout = {milliseconds}")
    except BaseException:
        connection.close()
        raise
    return connection


def _check_postgres_url(variable: str, value: str) -> None:
    """Parse the URL as libpq would, without connecting."""
    shown = redact_dsn(value)
    try:
        import psycopg
    except ImportError:
        raise SettingError(
            variable,
            shown,
            "a SQLite path, since psycopg is not installed; for PostgreSQL "
            "install it: pip install 'bgservice-credit-gate[postgres]'",
        ) from None
    try:
        psycopg.conninfo.conninfo_to_dict(value)
    except psycopg.Error as err:
        reason = redact_secrets(str(err).strip(), value)
        expected = f"{_EXPECTED} ({reason})"
        raise SettingError(variable, shown, expected) from None


def _is_psycopg_error(error: BaseException) -> bool:
    # psycopg is optional: a SQLite-only install never imported it, and then
    # no error can be one of its.
    psycopg = sys.modules.get("psycopg")
    return psycopg is not None and isinstance(error, psycopg.Error)
