"""Discovery: what counts as one backend, and when a name is contested."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import bgservice_core
from bgservice_core import BackendConflictError, Config, discover_backends
from tests.distributions import WELL_BEHAVED_MODULE, install_distribution


def path_entry(site: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a new directory first on ``sys.path``.

    It lives inside ``site`` (under a name no import can reach) so the
    ``site_dir`` fixture forgets modules imported from it, as from ``site``.
    """
    entry = site / f"path-entry-{name}"
    entry.mkdir()
    monkeypatch.syspath_prepend(str(entry))
    return entry


def install_twice_dist(site: Path) -> None:
    """Install distribution ``twice-dist`` offering backend ``twice``."""
    install_distribution(
        site,
        "twice-dist",
        entry_points={"twice": "twice_backend"},
        modules={"twice_backend.py": WELL_BEHAVED_MODULE},
    )


def test_discovery_reads_metadata_only(site_dir: Path) -> None:
    """discover_backends() reports metadata without importing the backend."""
    marker = site_dir / "imported.marker"
    install_distribution(
        site_dir,
        "eager-dist",
        version="0.3",
        summary="Leaves a marker when imported",
        entry_points={"eager": "eager_backend:plugin"},
        modules={"eager_backend.py": f"open({str(marker)!r}, 'w').close()\n"},
    )

    [entry] = discover_backends()["eager"]

    assert (entry.name, entry.value, entry.distribution, entry.version) == (
        "eager",
        "eager_backend:plugin",
        "eager-dist",
        "0.3",
    )
    assert entry.summary == "Leaves a marker when imported"
    assert entry.describe() == (
        "'eager' (entry point 'eager_backend:plugin' in group "
        "'bgservice.backends', distribution eager-dist 0.3)"
    )
    assert not marker.exists()
    assert "eager_backend" not in sys.modules


def test_other_groups_are_ignored(site_dir: Path) -> None:
    """Entry points outside 'bgservice.backends' are not backends."""
    install_distribution(
        site_dir,
        "other-dist",
        group="console_scripts",
        entry_points={"elsewhere": "other_module:main"},
    )

    assert "elsewhere" not in discover_backends()


def test_copies_on_two_path_entries_count_once(
    site_dir: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One distribution reachable from two sys.path entries is no conflict."""
    install_twice_dist(site_dir)
    install_twice_dist(path_entry(site_dir, "copy", monkeypatch))

    entries = discover_backends()["twice"]
    services = bgservice_core.open("twice", config)

    assert [entry.distribution for entry in entries] == ["twice-dist"]
    assert len(services) == 1


def test_one_directory_reached_twice_counts_once(
    site_dir: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory on sys.path twice, also by a symlink, is no conflict."""
    install_twice_dist(site_dir)
    # Inside site_dir, so that modules imported through it are forgotten too.
    link = site_dir / "path-entry-link"
    os.symlink(site_dir, link)
    monkeypatch.syspath_prepend(str(site_dir))
    monkeypatch.syspath_prepend(str(link))

    entries = discover_backends()["twice"]
    services = bgservice_core.open("twice", config)

    assert len(entries) == 1
    assert len(services) == 1


CONFLICT_MESSAGE = (
    "backend name 'shared' is provided more than once:\n"
    "  distribution alpha-dist 1.0: alpha_backend\n"
    "  distribution beta-dist 2.0: beta_backend:plugin\n"
    "uninstall all but one of these distributions, or rename one of the entry "
    "points"
)


def install_rivals(first: Path, second: Path) -> None:
    """Install two distributions offering ``shared``, one in each place."""
    install_distribution(
        first,
        "alpha-dist",
        entry_points={"shared": "alpha_backend", "alpha": "alpha_backend"},
        modules={"alpha_backend.py": WELL_BEHAVED_MODULE},
    )
    install_distribution(
        second,
        "beta-dist",
        version="2.0",
        entry_points={"shared": "beta_backend:plugin"},
        modules={"beta_backend.py": "raise RuntimeError('never imported')\n"},
    )


@pytest.mark.parametrize("alpha_first", [True, False], ids=["alpha", "beta"])
def test_two_distributions_offering_one_name(
    site_dir: Path,
    config: Config,
    monkeypatch: pytest.MonkeyPatch,
    alpha_first: bool,
) -> None:
    """A contested name fails the same way whatever the sys.path order."""
    earlier = path_entry(site_dir, "earlier", monkeypatch)
    if alpha_first:
        install_rivals(earlier, site_dir)
    else:
        install_rivals(site_dir, earlier)

    with pytest.raises(BackendConflictError) as caught:
        bgservice_core.open("shared", config)

    assert str(caught.value) == CONFLICT_MESSAGE
    assert caught.value.name == "shared"
    assert "alpha_backend" not in sys.modules
    assert "beta_backend" not in sys.modules


@pytest.mark.parametrize("alpha_first", [True, False], ids=["alpha", "beta"])
def test_conflict_entries_are_sorted(
    site_dir: Path, monkeypatch: pytest.MonkeyPatch, alpha_first: bool
) -> None:
    """discover_backends() lists a conflict's entries by distribution."""
    earlier = path_entry(site_dir, "earlier", monkeypatch)
    if alpha_first:
        install_rivals(earlier, site_dir)
    else:
        install_rivals(site_dir, earlier)

    entries = discover_backends()["shared"]

    distributions = [entry.distribution for entry in entries]
    assert distributions == ["alpha-dist", "beta-dist"]


def test_a_conflict_does_not_block_other_names(
    site_dir: Path,
    config: Config,
) -> None:
    """Another name of a conflicting distribution can still be opened."""
    install_rivals(site_dir, site_dir)

    services = bgservice_core.open("alpha", config)

    modules = [type(service).__module__ for service in services]
    assert modules == ["alpha_backend"]


def test_a_conflict_is_reported_with_unknown_names_first(
    site_dir: Path, config: Config
) -> None:
    """Unknown names are reported before a conflict, in one error."""
    install_rivals(site_dir, site_dir)

    with pytest.raises(bgservice_core.UnknownBackendError) as caught:
        bgservice_core.open("shared, nowhere", config)

    assert caught.value.names == ("nowhere",)


def install_unselectable(site: Path) -> None:
    """Install entry points named "Bad Name", "x,y" and "nop", never importable."""
    install_distribution(
        site,
        "odd-dist",
        entry_points={"Bad Name": "space_mod", "x,y": "comma_mod", "nop": "nop_mod"},
        modules={
            f"{module}.py": "raise RuntimeError('never import me')\n"
            for module in ("space_mod", "comma_mod", "nop_mod")
        },
    )


def test_opening_a_name_with_whitespace_is_refused(
    site_dir: Path, config: Config
) -> None:
    """An installed name register() would refuse cannot be opened either."""
    install_unselectable(site_dir)

    with pytest.raises(bgservice_core.BackendLoadError) as caught:
        bgservice_core.open(" Bad Name ", config)

    assert str(caught.value) == (
        "cannot load backend 'Bad Name' (entry point 'space_mod' in group "
        "'bgservice.backends', distribution odd-dist 1.0): invalid backend name "
        "'Bad Name': a name is a non-empty string without whitespace or commas, "
        "and 'nop' is reserved for 'no service'; its distribution must rename the "
        "entry point"
    )
    assert "space_mod" not in sys.modules


def test_names_with_list_syntax_are_read_as_lists(
    site_dir: Path, config: Config
) -> None:
    """A name "x,y" selects x and y, and "nop" nothing: neither entry is used."""
    install_unselectable(site_dir)

    with pytest.raises(bgservice_core.UnknownBackendError) as caught:
        bgservice_core.open("x,y", config)

    assert caught.value.names == ("x", "y")
    assert bgservice_core.open("nop", config) == []
    assert "comma_mod" not in sys.modules
    assert "nop_mod" not in sys.modules


def test_load_imports_what_the_entry_point_names(site_dir: Path) -> None:
    """load() follows module, module:attribute and extras as importlib-metadata."""
    install_distribution(
        site_dir,
        "shapes-dist",
        entry_points={
            "module-only": "shapes_backend",
            "attribute": "shapes_backend:inner.plugin",
            "with-extras": "shapes_backend : inner.plugin [fast, small]",
        },
        modules={
            "shapes_backend.py": "class inner:\n    plugin = 'the plugin'\n",
        },
    )

    loaded = {entry.name: entry.load() for entry in discover_backends_flat()}

    assert loaded["module-only"] is sys.modules["shapes_backend"]
    assert loaded["attribute"] == "the plugin"
    assert loaded["with-extras"] == "the plugin"


def test_load_refuses_an_in_process_registration() -> None:
    """An in-process backend has no entry point: load() says to use its constructor."""
    bgservice_core.register("in-memory", lambda config: None)
    [entry] = discover_backends()["in-memory"]

    assert not entry.installed
    with pytest.raises(ValueError, match="registered in-process: use its constructor"):
        entry.load()


def discover_backends_flat() -> list[bgservice_core.BackendEntry]:
    """Every entry discover_backends() reports, conflicts included."""
    return [entry for entries in discover_backends().values() for entry in entries]


def test_metadata_that_is_not_utf8_costs_a_character(site_dir: Path) -> None:
    """A METADATA file with a stray Latin-1 byte is listed, not a traceback."""
    dist_info = install_distribution(
        site_dir, "latin-dist", entry_points={"latin": "latin_backend"}
    )
    metadata = dist_info / "METADATA"
    metadata.write_bytes(metadata.read_bytes() + "Summary: café\n".encode("latin-1"))

    [entry] = discover_backends()["latin"]

    assert (entry.distribution, entry.version) == ("latin-dist", "1.0")
    assert entry.summary == "caf\N{REPLACEMENT CHARACTER}"
