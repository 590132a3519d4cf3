"""Registering constructors in-process, and meeting installed backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import bgservice_core
from bgservice_core import (
    BackendConflictError,
    Config,
    UnknownBackendError,
    discover_backends,
    register,
    unregister,
)
from tests.distributions import WELL_BEHAVED_MODULE, install_distribution

IN_PROCESS_ADVICE = (
    "register the in-process constructor under another name, or remove "
    "the other provider (bgservice_core.unregister() for an in-process "
    "one, uninstalling for a distribution)"
)


class RecordedService:
    """A service that keeps the Config it was built with."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def start(self) -> None:
        """Do nothing: the tests only build services."""

    def stop(self) -> None:
        """Do nothing: the tests only build services."""


def build_recorded(config: Config) -> RecordedService:
    """Build a RecordedService; its qualified name appears in messages."""
    return RecordedService(config)


def test_registered_backend_is_opened(config: Config) -> None:
    """open() finds a registered constructor and passes it its Config."""
    register("in-memory", build_recorded)

    services = bgservice_core.open("in-memory", config)

    assert len(services) == 1
    service = services[0]
    assert isinstance(service, RecordedService)
    assert service.config.backend_name == "in-memory"
    assert service.config.logger.name == "tests.chassis.in-memory"


def test_registered_backend_is_discovered() -> None:
    """discover_backends() lists a registration with where it comes from."""
    register("in-memory", build_recorded)

    [entry] = discover_backends()["in-memory"]

    value = "tests.test_register:build_recorded"
    assert entry.distribution == "(registered in-process)"
    assert entry.value == value
    described = entry.describe()
    assert described == f"'in-memory' ((registered in-process) {value})"


def test_registering_a_name_twice() -> None:
    """A second registration of a name is a conflict; the first one stays."""
    register("in-memory", build_recorded)

    with pytest.raises(BackendConflictError) as caught:
        register("in-memory", RecordedService)

    assert str(caught.value) == (
        "backend name 'in-memory' is provided more than once:\n"
        "  (registered in-process): tests.test_register:RecordedService\n"
        "  (registered in-process): tests.test_register:build_recorded\n"
        + IN_PROCESS_ADVICE
    )
    assert caught.value.name == "in-memory"
    [entry] = discover_backends()["in-memory"]
    assert entry.constructor is build_recorded


INVALID_NAMES = ["", "a,b", "a b", "tab\tname", " lead", "nop"]


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names_are_rejected(name: str) -> None:
    """A name a backend list could never select cannot be registered."""
    with pytest.raises(ValueError, match=r"^invalid backend name") as caught:
        register(name, build_recorded)

    assert str(caught.value) == (
        f"invalid backend name {name!r}: a name is a non-empty string without "
        "whitespace or commas, and 'nop' is reserved for 'no service'"
    )
    assert name not in discover_backends()


@pytest.mark.parametrize(("name", "kind"), [(42, "int"), (None, "NoneType")])
def test_non_string_names_are_rejected(name: Any, kind: str) -> None:
    """A name that is not a str is a TypeError that says what it got."""
    with pytest.raises(TypeError) as caught:
        register(name, build_recorded)

    assert str(caught.value) == (
        f"invalid backend name {name!r}: expected a str, got {kind}"
    )


def test_non_callable_constructor_is_rejected() -> None:
    """Only a callable can be registered as a constructor."""
    with pytest.raises(TypeError) as caught:
        register("in-memory", "build_recorded")  # type: ignore[arg-type]

    assert str(caught.value) == (
        "cannot register backend 'in-memory': constructor 'build_recorded' "
        "is not callable; pass a function or class that takes a Config"
    )
    assert "in-memory" not in discover_backends()


def test_registered_names_are_suggested(config: Config) -> None:
    """A registered name counts among the choices of an unknown-name error."""
    register("in-memory", build_recorded)

    with pytest.raises(UnknownBackendError) as caught:
        bgservice_core.open("in_memory", config)

    assert "in-memory" in caught.value.available
    assert caught.value.suggestions == {"in_memory": ["in-memory"]}


def test_unregister_forgets_the_name(config: Config) -> None:
    """After unregister() the name is unknown; unknown names are ignored."""
    register("in-memory", build_recorded)

    unregister("in-memory")
    unregister("never-registered")

    with pytest.raises(UnknownBackendError):
        bgservice_core.open("in-memory", config)


def install_shared(site: Path) -> None:
    """Install distribution ``shared-dist`` 2.1 offering backend ``shared``."""
    install_distribution(
        site,
        "shared-dist",
        version="2.1",
        entry_points={"shared": "shared_backend"},
        modules={"shared_backend.py": WELL_BEHAVED_MODULE},
    )


CLASH_MESSAGE = (
    "backend name 'shared' is provided more than once:\n"
    "  (registered in-process): tests.test_register:build_recorded\n"
    "  distribution shared-dist 2.1: shared_backend\n" + IN_PROCESS_ADVICE
)


def test_registering_an_installed_name(site_dir: Path, config: Config) -> None:
    """Registering a name an installed distribution offers is refused."""
    install_shared(site_dir)

    with pytest.raises(BackendConflictError) as caught:
        register("shared", build_recorded)

    assert str(caught.value) == CLASH_MESSAGE
    [service] = bgservice_core.open("shared", config)
    assert type(service).__module__ == "shared_backend"


def test_distribution_installed_after_registration(
    site_dir: Path, config: Config
) -> None:
    """A distribution installed after register() makes a conflict."""
    register("shared", build_recorded)
    install_shared(site_dir)

    with pytest.raises(BackendConflictError) as caught:
        bgservice_core.open("shared", config)

    assert str(caught.value) == CLASH_MESSAGE
    assert [entry.distribution for entry in discover_backends()["shared"]] == [
        "(registered in-process)",
        "shared-dist",
    ]
