"""Database names in settings: telling PostgreSQL from SQLite, hiding passwords.

A DSN's password must never reach a log line or an error message; every
message that may quote a DSN, or a driver error that may quote it, goes through
:func:`redact_dsn` or :func:`redact_secrets` first.
"""

from __future__ import annotations

import re
import urllib.parse

#: The URL schemes that select PostgreSQL; anything else is a SQLite file.
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
#: Stands in for a password in everything bgservice prints or raises.
REDACTED = "***"


def is_postgres_url(dsn: str) -> bool:
    """Whether ``dsn`` names a PostgreSQL database, not a SQLite file."""
    return dsn.strip().lower().startswith(POSTGRES_SCHEMES)


def looks_like_libpq_keywords(text: str) -> bool:
    """Whether ``text`` is a libpq ``key=value`` connection string.

    Such a string, ``host=db port=5432 password=secret``, is not a file name:
    taken as one, it would create a file named after the password.
    """
    pairs = _KEYWORD_PAIR.findall(text)
    if not pairs or _KEYWORD_PAIR.sub("", text).strip():
        return False
    return any(keyword.lower() in _LIBPQ_KEYWORDS for keyword in pairs)


def redact_dsn(dsn: str) -> str:
    """Return ``dsn`` with its password, if any, replaced by ``***``.

    Handles URLs (``postgresql://user:secret@host/db``, ``?password=secret``)
    and ``key=value`` strings; other text, such as a file path, is returned as
    it is.
    """
    if "://" not in dsn:
        return _KEYWORD_PASSWORD.sub(rf"\g<1>{REDACTED}", dsn)
    scheme, _, rest = dsn.partition("://")
    # The last "@" ends the user info even when a password holds a raw "@" or
    # "/"; an "@" further on, in a query, can only make this redact too much.
    userinfo, at, hosts = rest.rpartition("@")
    if at and ":" in userinfo:
        rest = f"{userinfo.partition(':')[0]}:{REDACTED}@{hosts}"
    return f"{scheme}://" + _QUERY_PASSWORD.sub(rf"\g<1>{REDACTED}", rest)


def redact_secrets(text: str, dsn: str) -> str:
    """Return ``text`` with ``dsn`` and every spelling of its password hidden.

    Use it on any message that may quote the DSN, such as a driver's error.
    """
    text = text.replace(dsn, redact_dsn(dsn))
    for secret in sorted(_passwords(dsn), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


_KEYWORD_PASSWORD = re.compile(
    r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE
)
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&#]*)", re.I)
# One "keyword = value" pair; a value is quoted, or runs to the next space.
_KEYWORD_PAIR = re.compile(r"\s*([A-Za-z_]+)\s*=\s*(?:'(?:[^'\\]|\\.)*'|\S+)")
# The connection keywords a libpq string is made of, enough to recognise one.
_LIBPQ_KEYWORDS = frozenset(
    {
        "application_name",
        "connect_timeout",
        "dbname",
        "host",
        "hostaddr",
        "options",
        "passfile",
        "password",
        "port",
        "service",
        "sslmode",
        "target_session_attrs",
        "user",
    }
)


def _passwords(dsn: str) -> set[str]:
    """Every spelling of the DSN's password: as written and percent-decoded."""
    if "://" not in dsn:
        found = {match.group(2) for match in _KEYWORD_PASSWORD.finditer(dsn)}
        found |= {secret.strip("'") for secret in found}
        return {secret for secret in found if secret}

    rest = dsn.partition("://")[2]
    # libpq ends the user info at the first "@" before any "/"; take that
    # reading too, in case it differs from the one redact_dsn takes.
    first_reading = re.match(r"[^@/]*@", rest)
    readings = [rest.rpartition("@")[0]]
    if first_reading:
        readings.append(first_reading.group(0)[:-1])
    found = {info.partition(":")[2] for info in readings if ":" in info}
    found.update(match.group(2) for match in _QUERY_PASSWORD.finditer(dsn))
    found.update({urllib.parse.unquote(secret) for secret in found})
    return {secret for secret in found if secret}
