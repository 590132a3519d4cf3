"""Opening a backend list: parsing, order, per-backend configs, imports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import importlib_metadata
import pytest

import bgservice_core
from bgservice_core import (
    Config,
    InvalidBackendListError,
    UnknownBackendError,
    open_by_name,
    parse_backend_names,
)
from tests.distributions import WELL_BEHAVED_MODULE, install_distribution


def marker_module(marker: Path) -> str:
    """Return the source of a backend that leaves ``marker`` on import."""
    return f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"


def install_well_behaved(site: Path, name: str) -> None:
    """Install distribution ``<name>-dist`` offering backend ``name``."""
    module = f"{name}_backend"
    install_distribution(
        site,
        f"{name}-dist",
        entry_points={name: module},
        modules={f"{module}.py": WELL_BEHAVED_MODULE},
    )


# -- parse_backend_names -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a, b,nop,,", ["a", "b"]),
        ("  a\t,\n b \n", ["a", "b"]),
        ("\tfirst ,second\t,third", ["first", "second", "third"]),
        ("", []),
        ("nop", []),
        (" nop , nop ", []),
        (",", []),
        (" , ,, ", []),
    ],
)
def test_parse_backend_names(text: str, expected: list[str]) -> None:
    """Whitespace, empty entries and nop are dropped; the order is kept."""
    assert parse_backend_names(text) == expected


def test_parse_keeps_case_and_separators() -> None:
    """Names are taken exactly: case and '-' versus '_' make other names."""
    assert parse_backend_names("Credit-Gate,credit_gate,credit-gate") == [
        "Credit-Gate",
        "credit_gate",
        "credit-gate",
    ]


def test_parse_rejects_a_repeated_name() -> None:
    """A name listed twice is an error that quotes the list and the name."""
    with pytest.raises(InvalidBackendListError) as caught:
        parse_backend_names("a, b , a")

    assert str(caught.value) == (
        "backend list 'a, b , a' names 'a' more than once; each backend "
        "runs at most once per process, so list it once"
    )
    assert caught.value.repeated == ("a",)
    assert caught.value.text == "a, b , a"


def test_parse_names_every_repeated_name() -> None:
    """All repeated names are reported together, in the order first listed."""
    with pytest.raises(InvalidBackendListError) as caught:
        parse_backend_names("b,a,b,a,c")

    assert caught.value.repeated == ("b", "a")
    assert str(caught.value) == (
        "backend list 'b,a,b,a,c' names 'b', 'a' more than once; each backend "
        "runs at most once per process, so list it once"
    )


# -- what open() does not do --------------------------------------------------


@pytest.mark.parametrize("names", ["", "nop", " , nop ,"])
def test_empty_list_performs_no_discovery(
    names: str, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty list returns no services without reading any metadata."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("discovery ran for an empty backend list")

    monkeypatch.setattr(importlib_metadata, "entry_points", refuse)
    monkeypatch.setattr(importlib_metadata, "distributions", refuse)

    assert bgservice_core.open(names, config) == []
    assert open_by_name(names, config) == {}


IMPORT_PROBE = textwrap.dedent(
    """
    import importlib.metadata
    import json
    import sys

    import importlib_metadata

    def refuse(*args, **kwargs):
        raise AssertionError("discovery ran while importing bgservice_core")

    for module in (importlib.metadata, importlib_metadata):
        for function in ("entry_points", "distributions", "distribution"):
            setattr(module, function, refuse)

    import bgservice_core

    print(json.dumps(sorted(sys.modules)))
    """
)


def test_importing_the_package_is_cheap(site_dir: Path) -> None:
    """A fresh import discovers nothing, imports no backend, click, sqlite3."""
    marker = site_dir / "imported.marker"
    install_distribution(
        site_dir,
        "eager-dist",
        entry_points={"eager": "eager_backend"},
        modules={"eager_backend.py": marker_module(marker)},
    )

    completed = subprocess.run(
        [sys.executable, "-c", IMPORT_PROBE],
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    modules = set(json.loads(completed.stdout))
    assert "bgservice_core" in modules
    top_level = {name.partition(".")[0] for name in modules}
    unwanted = {"click", "sqlite3", "_sqlite3", "tabulate"}
    backends = {"eager_backend", "bgservice_heartbeat"}
    assert top_level & (unwanted | backends) == set()
    assert not marker.exists()


# -- what open() returns ------------------------------------------------------


def test_services_come_back_in_listed_order(
    site_dir: Path,
    config: Config,
) -> None:
    """Services are returned in the order of the list, not of installation."""
    for name in ("alpha", "beta", "gamma"):
        install_well_behaved(site_dir, name)

    # Any: the well-behaved service keeps the Config it was given.
    services: list[Any] = bgservice_core.open("gamma, alpha,beta", config)
    by_name = open_by_name("beta,gamma", config)

    names = [service.config.backend_name for service in services]
    assert names == ["gamma", "alpha", "beta"]
    assert list(by_name) == ["beta", "gamma"]


def test_each_service_gets_its_own_config(
    site_dir: Path,
    config: Config,
) -> None:
    """Each backend's Config has its name and a child logger named after it."""
    for name in ("alpha", "beta"):
        install_well_behaved(site_dir, name)

    services: dict[str, Any] = open_by_name("alpha,beta", config)

    for name, service in services.items():
        own: Config = service.config
        assert own.backend_name == name
        assert own.logger.name == f"tests.chassis.{name}"
        assert own.logger.parent is config.logger
        assert own.gate is config.gate
        assert own.node_id == config.node_id
        assert service.started is False
    assert config.backend_name == ""


# -- what open() imports ------------------------------------------------------


def test_only_listed_backends_are_imported(
    site_dir: Path,
    config: Config,
) -> None:
    """Installed backends that are not listed are never imported."""
    install_well_behaved(site_dir, "chosen")
    marker = site_dir / "imported.marker"
    install_distribution(
        site_dir,
        "marking-dist",
        entry_points={"marking": "marking_backend"},
        modules={"marking_backend.py": marker_module(marker)},
    )
    install_distribution(
        site_dir,
        "exploding-dist",
        entry_points={"exploding": "exploding_backend"},
        modules={"exploding_backend.py": "raise RuntimeError('imported!')\n"},
    )

    services = bgservice_core.open("chosen", config)

    assert len(services) == 1
    assert not marker.exists()
    assert "marking_backend" not in sys.modules
    assert "exploding_backend" not in sys.modules


def test_names_are_resolved_before_any_import(
    site_dir: Path,
    config: Config,
) -> None:
    """An unknown name is reported before a known one is imported."""
    marker = site_dir / "imported.marker"
    install_distribution(
        site_dir,
        "marking-dist",
        entry_points={"marking": "marking_backend"},
        modules={
            "marking_backend.py": marker_module(marker) + WELL_BEHAVED_MODULE,
        },
    )

    with pytest.raises(UnknownBackendError) as caught:
        bgservice_core.open("marking, missing", config)

    assert caught.value.names == ("missing",)
    assert not marker.exists()
    assert "marking_backend" not in sys.modules


def test_all_backends_load_before_any_is_built(
    site_dir: Path,
    config: Config,
) -> None:
    """A backend failing to load stops open() before any constructor runs."""
    built = site_dir / "built.marker"
    install_distribution(
        site_dir,
        "recording-dist",
        entry_points={"recording": "recording_backend"},
        modules={
            "recording_backend.py": f"""
                from pathlib import Path
                from bgservice_core import hookimpl

                @hookimpl
                def bgservice_build_service(config):
                    Path({str(built)!r}).touch()
            """
        },
    )
    install_distribution(
        site_dir,
        "broken-dist",
        entry_points={"broken": "broken_backend"},
        modules={"broken_backend.py": "raise RuntimeError('no')\n"},
    )

    with pytest.raises(bgservice_core.BackendLoadError):
        bgservice_core.open("recording, broken", config)

    assert not built.exists()


def test_open_rejects_a_list_of_names_with_a_hint(config: Config) -> None:
    """A list instead of the comma-separated string is a TypeError saying so."""
    with pytest.raises(TypeError) as caught:
        bgservice_core.open(["heartbeat"], config)  # type: ignore[arg-type]

    assert str(caught.value) == (
        "names must be a comma-separated string such as 'heartbeat, credit-gate', "
        "not list ['heartbeat']; join a list first: ', '.join(names)"
    )
