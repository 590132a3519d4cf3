"""Reading a backend's settings from the environment: defaults, values, refusals."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from bgservice_core import SettingError, read_integer, read_seconds, read_text

VARIABLE = "BGSERVICE_TEST_SETTING"


@pytest.fixture(autouse=True)
def _unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test with the variable unset, whatever the shell exported."""
    monkeypatch.delenv(VARIABLE, raising=False)


def _refusal(
    reader: Callable[[], object], raw: str, monkeypatch: pytest.MonkeyPatch
) -> str:
    """Set the variable to ``raw``, call ``reader`` and return the refusal's text."""
    monkeypatch.setenv(VARIABLE, raw)
    with pytest.raises(SettingError) as caught:
        reader()
    assert caught.value.variable == VARIABLE
    assert caught.value.value == raw
    return str(caught.value)


# -- read_text ---------------------------------------------------------------


def test_text_unset_returns_default() -> None:
    """An unset variable yields the default."""
    assert read_text(VARIABLE, "fallback") == "fallback"


def test_text_value_is_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A set value is returned without surrounding whitespace."""
    monkeypatch.setenv(VARIABLE, "  /var/lib/bgservice.db \n")

    assert read_text(VARIABLE, "fallback") == "/var/lib/bgservice.db"


@pytest.mark.parametrize("raw", ["", "   ", "\t\n"])
def test_text_blank_is_refused(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A set but blank value is an error, not a silent fallback to the default."""
    message = _refusal(lambda: read_text(VARIABLE, "fallback"), raw, monkeypatch)

    assert message == (
        f"BGSERVICE_TEST_SETTING={raw!r} is invalid: expected a non-empty value, "
        "or leave it unset"
    )


# -- read_seconds --------------------------------------------------------------


def test_seconds_unset_returns_default() -> None:
    """An unset variable yields the default, untouched."""
    assert read_seconds(VARIABLE, 10.0) == 10.0


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("3", 3.0), ("0.25", 0.25), (" 2.5 ", 2.5), ("1e3", 1000.0), ("3600", 3600.0)],
)
def test_seconds_valid_values(
    raw: str, seconds: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Positive finite numbers, integral or not, are accepted."""
    monkeypatch.setenv(VARIABLE, raw)

    assert read_seconds(VARIABLE, 10.0) == seconds


@pytest.mark.parametrize(
    "raw", ["abc", "-5", "0", "-0", "nan", "inf", "-inf", "", "  ", "1e-400", "5s"]
)
def test_seconds_refusals(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything but a positive finite number names the variable and the value."""
    message = _refusal(lambda: read_seconds(VARIABLE, 10.0), raw, monkeypatch)

    assert message == (
        f"BGSERVICE_TEST_SETTING={raw!r} is invalid: expected a positive number "
        "of seconds, such as 10"
    )


def test_seconds_example_follows_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The example in the message is the backend's own default."""
    message = _refusal(lambda: read_seconds(VARIABLE, 0.5), "soon", monkeypatch)

    assert message == (
        "BGSERVICE_TEST_SETTING='soon' is invalid: expected a positive number "
        "of seconds, such as 0.5"
    )


def test_seconds_too_long_to_wait_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A period longer than a thread can wait is refused now, not crashing later."""
    message = _refusal(lambda: read_seconds(VARIABLE, 10.0), "1e12", monkeypatch)

    assert message == (
        "BGSERVICE_TEST_SETTING='1e12' is invalid: expected a positive number "
        "of seconds up to 9223372036, such as 10"
    )


# -- read_integer --------------------------------------------------------------


def test_integer_unset_returns_default() -> None:
    """An unset variable yields the default, even outside the bounds."""
    assert read_integer(VARIABLE, 3, minimum=1) == 3


@pytest.mark.parametrize(("raw", "number"), [("7", 7), (" 12 ", 12), ("1", 1)])
def test_integer_valid_values(
    raw: str, number: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whole numbers within the bounds are accepted, whitespace ignored."""
    monkeypatch.setenv(VARIABLE, raw)

    assert read_integer(VARIABLE, 3, minimum=1, maximum=100) == number


@pytest.mark.parametrize(
    "raw", ["abc", "-5", "0", "nan", "inf", "", "  ", "2.5", "101", "1e2"]
)
def test_integer_refusals(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anything but a whole number within the bounds is refused with the range."""
    message = _refusal(
        lambda: read_integer(VARIABLE, 3, minimum=1, maximum=100), raw, monkeypatch
    )

    assert message == (
        f"BGSERVICE_TEST_SETTING={raw!r} is invalid: expected a whole number "
        "from 1 to 100, such as 3"
    )


def test_integer_minimum_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """With only a minimum, the message names that minimum."""
    message = _refusal(lambda: read_integer(VARIABLE, 4, minimum=1), "0", monkeypatch)

    assert message == (
        "BGSERVICE_TEST_SETTING='0' is invalid: expected a whole number of at "
        "least 1, such as 4"
    )


def test_integer_maximum_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """With only a maximum, the message names that maximum."""
    message = _refusal(lambda: read_integer(VARIABLE, 4, maximum=9), "10", monkeypatch)

    assert message == (
        "BGSERVICE_TEST_SETTING='10' is invalid: expected a whole number of at "
        "most 9, such as 4"
    )


def test_integer_unbounded_accepts_negative(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without bounds any whole number is valid, negative ones included."""
    monkeypatch.setenv(VARIABLE, "-5")

    assert read_integer(VARIABLE, 4) == -5


def test_integer_unbounded_refuses_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without bounds the message asks only for a whole number."""
    message = _refusal(lambda: read_integer(VARIABLE, 4), "abc", monkeypatch)

    assert message == (
        "BGSERVICE_TEST_SETTING='abc' is invalid: expected a whole number, such as 4"
    )


def test_setting_error_is_a_value_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """SettingError keeps the expectation and can be caught as a ValueError."""
    monkeypatch.setenv(VARIABLE, "abc")

    with pytest.raises(ValueError, match="BGSERVICE_TEST_SETTING") as caught:
        read_seconds(VARIABLE, 10.0)
    assert isinstance(caught.value, SettingError)
    assert caught.value.expected == "a positive number of seconds, such as 10"


@pytest.mark.parametrize("raw", ["1_0", "\u0661\u0660", "\uff11\uff10", "1_0.5"])
def test_seconds_only_plain_ascii_notation(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Digit separators and digits of other scripts are refused, not read as 10."""
    message = _refusal(lambda: read_seconds(VARIABLE, 10.0), raw, monkeypatch)

    assert message == (
        f"BGSERVICE_TEST_SETTING={raw!r} is invalid: expected a positive number "
        "of seconds, such as 10"
    )


@pytest.mark.parametrize("raw", ["1_0", "\u0661\u0660", "\uff11\uff10"])
def test_integer_only_plain_ascii_notation(
    raw: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Digit separators and digits of other scripts are refused, not read as 10."""
    message = _refusal(lambda: read_integer(VARIABLE, 4), raw, monkeypatch)

    assert message == (
        f"BGSERVICE_TEST_SETTING={raw!r} is invalid: expected a whole number, such as 4"
    )


def test_seconds_below_minimum_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A period shorter than the minimum given is refused, naming the minimum."""
    message = _refusal(
        lambda: read_seconds(VARIABLE, 10.0, minimum=0.01), "1e-9", monkeypatch
    )

    assert message == (
        "BGSERVICE_TEST_SETTING='1e-9' is invalid: expected a number of seconds "
        "of at least 0.01, such as 10"
    )


def test_seconds_at_minimum_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The minimum itself is a valid period."""
    monkeypatch.setenv(VARIABLE, "0.01")

    assert read_seconds(VARIABLE, 10.0, minimum=0.01) == 0.01
