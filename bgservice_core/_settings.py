"""Reading a backend's own settings from environment variables, validated.

Backends call these from their constructor, so that a bad value stops the
chassis at startup with a :class:`SettingError` naming the variable and value.
"""

from __future__ import annotations

import math
import os
import re
import threading

from bgservice_core._errors import SettingError


def read_text(variable: str, default: str) -> str:
    """Return the variable's value stripped of surrounding whitespace, or ``default``.

    :raises SettingError: the variable is set but blank.
    """
    raw = os.environ.get(variable)
    if raw is None:
        return default
    if not raw.strip():
        raise SettingError(variable, raw, "a non-empty value, or leave it unset")
    return raw.strip()


# Plain ASCII notation only: int() and float() would also take "1_0" and
# digits of other scripts, which no operator means to type into a setting.
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_WHOLE_NUMBER = re.compile(r"[+-]?[0-9]+")


def read_seconds(
    variable: str, default: float, *, minimum: float | None = None
) -> float:
    """Return a positive, finite number of seconds from ``variable``.

    :param minimum: the shortest period accepted, for a loop that must not
        spin; without one, any positive number is.
    :raises SettingError: the value is not such a number.
    """
    raw = os.environ.get(variable)
    if raw is None:
        return default
    expected = f"a positive number of seconds, such as {default:g}"
    if not _DECIMAL.fullmatch(raw.strip()):
        raise SettingError(variable, raw, expected)
    seconds = float(raw)
    if not math.isfinite(seconds) or seconds <= 0:
        raise SettingError(variable, raw, expected)
    if minimum is not None and seconds < minimum:
        at_least = f"a number of seconds of at least {minimum:g}, such as {default:g}"
        raise SettingError(variable, raw, at_least)
    if seconds > threading.TIMEOUT_MAX:
        # A longer wait overflows the platform's timers: the loop would crash on
        # its first wait instead of the chassis refusing the value at startup.
        bounded = (
            f"a positive number of seconds up to {threading.TIMEOUT_MAX:.0f}, "
            f"such as {default:g}"
        )
        raise SettingError(variable, raw, bounded)
    return seconds


def read_integer(
    variable: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """Return a whole number from ``variable``, within the bounds given.

    :raises SettingError: the value is not such a number.
    """
    raw = os.environ.get(variable)
    if raw is None:
        return default
    expected = _integer_expectation(default, minimum, maximum)
    if not _WHOLE_NUMBER.fullmatch(raw.strip()):
        raise SettingError(variable, raw, expected)
    number = int(raw)
    if (minimum is not None and number < minimum) or (
        maximum is not None and number > maximum
    ):
        raise SettingError(variable, raw, expected)
    return number


def _integer_expectation(default: int, minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"a whole number from {minimum} to {maximum}, such as {default}"
    if minimum is not None:
        return f"a whole number of at least {minimum}, such as {default}"
    if maximum is not None:
        return f"a whole number of at most {maximum}, such as {default}"
    return f"a whole number, such as {default}"
