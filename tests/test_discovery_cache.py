"""The discovery cache: every install, uninstall and upgrade is seen at once.

A cached answer is written only for metadata older than ``SETTLE_SECONDS``, so
the tests that need one start from site folders laid out by a module fixture
and settled by one shared wait on the real clock. Each such test first makes
the cache file appear (and checks that it did), then changes the installation
and calls again at once, with no wait: that call must see the change.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import importlib_metadata
import platformdirs
import pytest

import bgservice_core
from bgservice_core import (
    Config,
    SettingError,
    UnknownBackendError,
    _discovery,
    _discovery_cache,
    discover_backends,
)
from bgservice_core._discovery import installed_entries
from tests.distributions import (
    GROUP,
    WELL_BEHAVED_MODULE,
    first_on_path,
    install_distribution,
)
from tests.settling import wait_until_settled

CACHE_DIR = _discovery_cache.CACHE_DIR_VARIABLE
SWITCH = _discovery_cache.SWITCH_VARIABLE

#: Every distribution these tests install has this prefix; the backends of the
#: development environment (plugins/) are left out of the comparisons.
PREFIX = "cachetest-"

#: How alpha, the backend every settled site starts with, is seen.
ALPHA = {"alpha": ("cachetest-alpha", "1.0", "alpha_backend")}

#: A cache file's JSON content.
Content = dict[str, Any]

#: What alpha is renamed to in a doctored cache file: seeing it means the
#: file was believed.
POISONED_NAME = "evil"

#: The backend module an upgrade brings, with a service of another class.
UPGRADED_MODULE = WELL_BEHAVED_MODULE.replace("Quiet", "Upgraded")


# -- fixtures and helpers -----------------------------------------------------


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder of this test's own, with the cache switched on."""
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_DIR, str(folder))
    monkeypatch.delenv(SWITCH, raising=False)
    return folder


@pytest.fixture
def default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither cache setting set: the cache is on, in the default folder."""
    monkeypatch.delenv(CACHE_DIR, raising=False)
    monkeypatch.delenv(SWITCH, raising=False)


@pytest.fixture(scope="module")
def settled_pool(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> list[Path]:
    """Site folders holding backend alpha 1.0, all settled by a single wait.

    One per test of this module that asks for ``settled_site``.
    """
    users = sum(
        "settled_site" in getattr(item, "fixturenames", ())
        for item in request.session.items
        if getattr(item, "module", None) is request.module
    )
    root = tmp_path_factory.mktemp("settled")
    sites = [_lay_out_site(root / f"site-{index}") for index in range(users)]
    wait_until_settled(root)
    return sites


@pytest.fixture
def settled_site(
    settled_pool: list[Path],
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    """A settled site folder holding alpha, first on sys.path and PYTHONPATH.

    Beside alpha it holds ``legacy-entry``, a folder no import can reach, with
    an ``.egg-info`` distribution for a test to put on ``sys.path``.
    """
    if settled_pool:
        site = settled_pool.pop()
    else:  # a test run again, as by a rerun plugin, waits on its own
        site = _lay_out_site(tmp_path / "site")
        wait_until_settled(site)
    with first_on_path(site, monkeypatch):
        # The rest of sys.path counts too; it is normally long settled.
        wait_until_settled(search_path=sys.path)
        yield site


def _lay_out_site(site: Path) -> Path:
    site.mkdir()
    install_distribution(
        site,
        "cachetest-alpha",
        entry_points={"alpha": "alpha_backend"},
        modules={"alpha_backend.py": WELL_BEHAVED_MODULE},
    )
    legacy = site / "legacy-entry"
    egg_info = legacy / "cachetest_legacy.egg-info"
    egg_info.mkdir(parents=True)
    (egg_info / "PKG-INFO").write_text(
        "Metadata-Version: 1.1\nName: cachetest-legacy\nVersion: 0.1\n"
    )
    entry_points = f"[{GROUP}]\nlegacy = legacy_backend\n"
    (egg_info / "entry_points.txt").write_text(entry_points)
    module = textwrap.dedent(WELL_BEHAVED_MODULE)
    (legacy / "legacy_backend.py").write_text(module)

    # For a chassis that finds its plugins from its own folder through a link:
    # "linked/opt/bin/../plugins" is linked/real/plugins, not linked/opt/plugins.
    (site / "linked" / "real" / "bin").mkdir(parents=True)
    (site / "linked" / "real" / "plugins").mkdir()
    (site / "linked" / "opt").mkdir()
    (site / "linked" / "opt" / "bin").symlink_to(site / "linked" / "real" / "bin")

    # An egg claiming alpha's distribution name, which hides alpha while it
    # comes first on sys.path: its name is read from its PKG-INFO.
    egg_info = site / "eggs" / "cachetest_alpha-0.9.egg" / "EGG-INFO"
    egg_info.mkdir(parents=True)
    (egg_info / "PKG-INFO").write_text(
        "Metadata-Version: 1.1\nName: cachetest-alpha\nVersion: 0.9\n"
    )
    (egg_info / "entry_points.txt").write_text(f"[{GROUP}]\neggy = eggy_backend\n")
    return site


def seen() -> dict[str, tuple[str, str, str]]:
    """Return what discovery reports of this module's distributions."""
    return {
        entry.name: (entry.distribution, entry.version, entry.value)
        for entry in installed_entries()
        if entry.distribution.startswith(PREFIX)
    }


def cache_files(folder: Path) -> list[Path]:
    """Return the cache files in ``folder``, sorted."""
    return sorted(folder.glob("entry-points-*.json"))


def write_cache(folder: Path) -> Path:
    """Call discovery on a settled layout; return the cache file it wrote."""
    before = set(cache_files(folder))
    installed_entries()
    written = set(cache_files(folder)) - before
    assert len(written) == 1, f"expected a new cache file in {folder}"
    return written.pop()


def refuse_scanning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make reading the installed metadata fail: only the cache can answer."""

    def refuse() -> NoReturn:
        raise AssertionError("the metadata was read; the cache should answer")

    monkeypatch.setattr(_discovery, "_scan_installed", refuse)


def rewrite_in_place(path: Path, old: str, new: str) -> None:
    """Replace ``old`` by ``new`` in a file, rewriting it in place."""
    text = path.read_text()
    assert old in text
    with open(path, "w") as file:
        file.write(text.replace(old, new))


def uninstall_alpha(site: Path) -> None:
    """Remove alpha 1.0 from ``site`` as pip does: its metadata and its module."""
    shutil.rmtree(site / "cachetest_alpha-1.0.dist-info")
    (site / "alpha_backend.py").unlink()


def edit_cache(location: Path, change: Callable[[Content], object]) -> None:
    """Apply ``change`` to a cache file's JSON content and write it back."""
    content = json.loads(location.read_text())
    change(content)
    location.write_text(json.dumps(content))


def poison(content: Content) -> None:
    """Rename backend alpha in a cache file's rows, which start with names."""
    for row in content["rows"]:
        if row[0] == "alpha":
            row[0] = POISONED_NAME


# -- the cache answers, and is believed ---------------------------------------


def test_a_settled_layout_is_answered_from_the_cache(
    settled_site: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once written, the cache answers for an unchanged layout by itself."""
    write_cache(cache_dir)
    refuse_scanning(monkeypatch)

    assert seen() == ALPHA
    assert "alpha" in discover_backends()


def test_an_intact_cache_file_is_believed(settled_site: Path, cache_dir: Path) -> None:
    """A cache file whose signature matches is used as it is, rows and all."""
    location = write_cache(cache_dir)

    edit_cache(location, poison)

    assert seen() == {POISONED_NAME: ALPHA["alpha"]}


# -- install, uninstall, upgrade ----------------------------------------------


def test_an_install_is_seen_by_the_next_call(
    settled_site: Path, cache_dir: Path, config: Config
) -> None:
    """A backend installed after the cache was written is opened next call."""
    write_cache(cache_dir)

    install_distribution(
        settled_site,
        "cachetest-beta",
        entry_points={"beta": "beta_backend"},
        modules={"beta_backend.py": WELL_BEHAVED_MODULE},
    )

    [service] = bgservice_core.open("beta", config)
    assert type(service).__module__ == "beta_backend"
    beta = ("cachetest-beta", "1.0", "beta_backend")
    assert seen() == {**ALPHA, "beta": beta}
    assert "beta" in discover_backends()


def test_an_uninstall_is_seen_by_the_next_call(
    settled_site: Path, cache_dir: Path, config: Config
) -> None:
    """A backend removed after the cache was written is unknown next call."""
    write_cache(cache_dir)

    uninstall_alpha(settled_site)

    assert "alpha" not in discover_backends()
    with pytest.raises(UnknownBackendError) as caught:
        bgservice_core.open("alpha", config)
    assert caught.value.names == ("alpha",)
    assert seen() == {}


def test_an_upgrade_is_seen_by_the_next_call(
    settled_site: Path, cache_dir: Path, config: Config
) -> None:
    """Replacing 1.0 by a 2.0 pointing elsewhere, as pip does, is seen."""
    write_cache(cache_dir)

    uninstall_alpha(settled_site)
    install_distribution(
        settled_site,
        "cachetest-alpha",
        version="2.0",
        entry_points={"alpha": "alpha_backend_v2"},
        modules={"alpha_backend_v2.py": UPGRADED_MODULE},
    )

    assert seen() == {"alpha": ("cachetest-alpha", "2.0", "alpha_backend_v2")}
    [service] = bgservice_core.open("alpha", config)
    assert type(service).__module__ == "alpha_backend_v2"
    assert type(service).__name__ == "UpgradedService"


def test_entry_points_rewritten_in_place_are_seen(
    settled_site: Path, cache_dir: Path, config: Config
) -> None:
    """entry_points.txt rewritten in place (inode, size kept) is seen."""
    write_cache(cache_dir)
    dist_info = settled_site / "cachetest_alpha-1.0.dist-info"
    entry_points = dist_info / "entry_points.txt"
    unchanged = [os.stat(path) for path in (entry_points, entry_points.parent)]
    site_before = os.stat(settled_site)

    # Same length: only the file's times tell the cache that anything changed.
    rewrite_in_place(entry_points, "alpha = ", "gamma = ")

    assert seen() == {"gamma": ("cachetest-alpha", "1.0", "alpha_backend")}
    [service] = bgservice_core.open("gamma", config)
    assert type(service).__module__ == "alpha_backend"
    after = os.stat(entry_points)
    assert after.st_ino == unchanged[0].st_ino
    assert after.st_size == unchanged[0].st_size
    assert os.stat(entry_points.parent).st_mtime_ns == unchanged[1].st_mtime_ns
    assert os.stat(settled_site).st_mtime_ns == site_before.st_mtime_ns


def test_a_version_rewritten_in_place_is_seen(
    settled_site: Path, cache_dir: Path
) -> None:
    """METADATA's Version rewritten in place (same inode and size) is seen."""
    write_cache(cache_dir)
    metadata = settled_site / "cachetest_alpha-1.0.dist-info" / "METADATA"
    before = os.stat(metadata)

    rewrite_in_place(metadata, "Version: 1.0", "Version: 1.1")

    assert seen() == {"alpha": ("cachetest-alpha", "1.1", "alpha_backend")}
    after = os.stat(metadata)
    assert (after.st_ino, after.st_size) == (before.st_ino, before.st_size)


@pytest.mark.parametrize(
    ("filename", "old", "new", "expected"),
    [
        ("PKG-INFO", "Version: 0.1", "Version: 0.2", ("legacy", "0.2")),
        ("entry_points.txt", "legacy = ", "relict = ", ("relict", "0.1")),
    ],
    ids=["PKG-INFO", "entry_points.txt"],
)
def test_a_legacy_egg_info_rewritten_in_place_is_seen(
    filename: str,
    old: str,
    new: str,
    expected: tuple[str, str],
    settled_site: Path,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An .egg-info's PKG-INFO or entry_points.txt edited in place: seen."""
    legacy_entry = settled_site / "legacy-entry"
    monkeypatch.syspath_prepend(str(legacy_entry))
    write_cache(cache_dir)
    assert seen()["legacy"] == ("cachetest-legacy", "0.1", "legacy_backend")

    egg_info = legacy_entry / "cachetest_legacy.egg-info"
    rewrite_in_place(egg_info / filename, old, new)

    name, version = expected
    legacy = ("cachetest-legacy", version, "legacy_backend")
    assert seen() == {**ALPHA, name: legacy}


# -- sys.path -----------------------------------------------------------------


def test_a_new_path_entry_is_seen_and_each_path_has_its_own_file(
    settled_site: Path,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A new sys.path entry's backend is seen; the old path keeps its file."""
    location = write_cache(cache_dir)
    extra = tmp_path / "extra-entry"
    extra.mkdir()
    install_distribution(extra, "cachetest-beta", entry_points={"beta": "beta_mod"})

    monkeypatch.syspath_prepend(str(extra))
    assert seen() == {**ALPHA, "beta": ("cachetest-beta", "1.0", "beta_mod")}

    sys.path.remove(str(extra))
    refuse_scanning(monkeypatch)
    assert seen() == ALPHA
    assert cache_files(cache_dir) == [location]


def test_other_files_coming_and_going_on_the_path_keep_the_cache(
    settled_site: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database journal made and removed in a path folder changes nothing."""
    location = write_cache(cache_dir)
    written = location.read_bytes()

    journal = settled_site / "bgservice.db-journal"
    journal.write_text("a transaction\n")
    journal.unlink()
    (settled_site / "app.log").write_text("a line\n")

    refuse_scanning(monkeypatch)
    assert seen() == ALPHA
    assert location.read_bytes() == written


def test_a_missing_path_entry_that_appears_is_seen(
    settled_site: Path,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A sys.path entry missing when the cache was written, then made: seen."""
    later = tmp_path / "made-later"
    monkeypatch.syspath_prepend(str(later))
    write_cache(cache_dir)

    install_distribution(later, "cachetest-beta", entry_points={"beta": "beta_mod"})

    assert seen() == {**ALPHA, "beta": ("cachetest-beta", "1.0", "beta_mod")}


def test_a_path_entry_through_a_link_and_up_is_seen(
    settled_site: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry "link/../plugins" is checked where it leads, not where it reads."""
    linked = settled_site / "linked"
    monkeypatch.syspath_prepend(str(linked / "opt" / "bin" / ".." / "plugins"))
    write_cache(cache_dir)

    install_distribution(
        linked / "real" / "plugins", "cachetest-beta", entry_points={"beta": "m"}
    )

    assert seen() == {**ALPHA, "beta": ("cachetest-beta", "1.0", "m")}


def test_an_egg_renamed_in_its_pkg_info_is_seen(
    settled_site: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An egg's name comes from its PKG-INFO: renaming it there stops a shadowing."""
    egg = settled_site / "eggs" / "cachetest_alpha-0.9.egg"
    monkeypatch.syspath_prepend(str(egg))
    location = write_cache(cache_dir)
    assert seen() == {"eggy": ("cachetest-alpha", "0.9", "eggy_backend")}
    cached_names = [row[0] for row in json.loads(location.read_text())["rows"]]
    assert "eggy" in cached_names
    assert "alpha" not in cached_names

    pkg_info = egg / "EGG-INFO" / "PKG-INFO"
    with pkg_info.open("r+") as file:  # in place: the folder does not change
        renamed = file.read().replace("cachetest-alpha", "cachetest-eggyy")
        file.seek(0)
        file.write(renamed)

    assert seen() == {**ALPHA, "eggy": ("cachetest-eggyy", "0.9", "eggy_backend")}


def test_a_deleted_working_folder_costs_the_cache_only(
    settled_site: Path,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With "" on sys.path and the working folder gone, discovery still answers."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    monkeypatch.syspath_prepend("")

    for switch in ("on", "off"):
        monkeypatch.setenv(SWITCH, switch)
        assert seen() == ALPHA
    assert cache_files(cache_dir) == []


def test_a_fresh_layout_is_not_cached(site_dir: Path, cache_dir: Path) -> None:
    """Metadata written moments ago is read but not cached: it is too new."""
    install_distribution(site_dir, "cachetest-new", entry_points={"new": "m"})

    assert seen() == {"new": ("cachetest-new", "1.0", "m")}
    assert seen() == {"new": ("cachetest-new", "1.0", "m")}
    assert cache_files(cache_dir) == []


# -- settings -----------------------------------------------------------------


#: The default folder follows the XDG rule on Linux and other Unix systems.
XDG_PLATFORMS_ONLY = pytest.mark.skipif(
    sys.platform in ("win32", "darwin"), reason="the XDG rule of Unix systems"
)


def test_switching_the_cache_off_writes_nothing(
    settled_site: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each spelling of off leaves the cache folder empty; on writes."""
    for value in ("off", "OFF", " false ", "no", "0"):
        monkeypatch.setenv(SWITCH, value)
        assert seen() == ALPHA, value
        assert cache_files(cache_dir) == [], value

    monkeypatch.setenv(SWITCH, " On ")
    write_cache(cache_dir)


def test_a_malformed_switch_is_a_setting_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """BGSERVICE_DISCOVERY_CACHE=maybe raises a SettingError quoting it."""
    monkeypatch.setenv(SWITCH, "maybe")

    with pytest.raises(SettingError) as caught:
        discover_backends()

    assert str(caught.value) == (
        "BGSERVICE_DISCOVERY_CACHE='maybe' is invalid: expected on or off (or "
        "true/false, yes/no, 1/0), or leave it unset for on"
    )
    assert (caught.value.variable, caught.value.value) == (SWITCH, "maybe")


@pytest.mark.parametrize("names", ["", "nop", " , nop, "])
def test_open_of_nothing_still_checks_the_settings(
    names: str, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A malformed setting fails the first boot, even one that selects nothing."""
    monkeypatch.setenv(SWITCH, "maybe")

    with pytest.raises(SettingError) as caught:
        bgservice_core.open(names, config)

    assert caught.value.variable == SWITCH


def test_list_reports_a_malformed_switch_without_a_traceback() -> None:
    """bgservice list prints the SettingError alone and exits with its code."""
    completed = subprocess.run(
        [sys.executable, "-m", "bgservice_core._cli", "list"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, SWITCH: "maybe"},
        timeout=60,
    )

    assert completed.returncode == SettingError.exit_code != 0
    assert completed.stderr == (
        "Error: BGSERVICE_DISCOVERY_CACHE='maybe' is invalid: expected on or off "
        "(or true/false, yes/no, 1/0), or leave it unset for on\n"
    )
    assert completed.stdout == ""


@pytest.mark.parametrize("switch", [None, "off"], ids=["cache on", "cache off"])
@pytest.mark.parametrize("value", ["relative/cache", "", "   "])
def test_a_cache_folder_must_be_absolute(
    value: str, switch: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A blank or relative BGSERVICE_CACHE_DIR is an error, even with the cache off."""
    if switch is None:
        monkeypatch.delenv(SWITCH, raising=False)
    else:
        monkeypatch.setenv(SWITCH, switch)
    monkeypatch.setenv(CACHE_DIR, value)

    with pytest.raises(SettingError) as caught:
        discover_backends()

    assert str(caught.value) == (
        f"BGSERVICE_CACHE_DIR={value!r} is invalid: expected an absolute path to "
        "a folder, or leave it unset for the user's cache folder"
    )


@XDG_PLATFORMS_ONLY
@pytest.mark.parametrize(
    ("home", "xdg_cache_home"),
    [
        ("/home/ada", None),
        ("/home/ada", "/var/cache/ada"),
        ("/srv/users/grace", ""),
        ("/home/ada", "/tmp/xdg cache/with space"),
    ],
)
def test_the_default_folder_follows_platformdirs(
    home: str,
    xdg_cache_home: str | None,
    default_settings: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unset, the cache folder is platformdirs' user_cache_dir("bgservice")."""
    monkeypatch.setenv("HOME", home)
    if xdg_cache_home is None:
        monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_CACHE_HOME", xdg_cache_home)

    expected = platformdirs.user_cache_dir("bgservice", appauthor=False)
    assert _discovery_cache.cache_directory() == expected


@XDG_PLATFORMS_ONLY
@pytest.mark.parametrize("xdg_cache_home", ["relative/cache", "~/cache"])
def test_a_relative_xdg_cache_home_is_ignored(
    xdg_cache_home: str, default_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative XDG_CACHE_HOME is ignored, as the XDG spec says."""
    monkeypatch.setenv("HOME", "/home/ada")
    monkeypatch.setenv("XDG_CACHE_HOME", xdg_cache_home)

    assert _discovery_cache.cache_directory() == "/home/ada/.cache/bgservice"


@XDG_PLATFORMS_ONLY
@pytest.mark.parametrize("home", ["", "relative/home"])
def test_no_usable_home_folder_means_no_default_cache(
    home: str, default_settings: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty or relative HOME gives no cache folder, not one under "/"."""
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", home)

    assert _discovery_cache.cache_directory() is None


def test_the_default_folder_on_macos_follows_platformdirs(
    default_settings: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On macOS the folder is platformdirs' ~/Library/Caches/bgservice."""
    from platformdirs.macos import MacOS

    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", "/Users/ada")
    expected = MacOS("bgservice", appauthor=False).user_cache_dir

    with monkeypatch.context() as patched:
        patched.setattr(sys, "platform", "darwin")
        found = _discovery_cache.cache_directory()

    assert found == expected == "/Users/ada/Library/Caches/bgservice"


# -- robustness ---------------------------------------------------------------


def _truncate(location: Path) -> None:
    text = location.read_text()
    location.write_text(text[: len(text) // 2])


def _poison(**changes: Any) -> Callable[[Path], None]:
    """Return a damage that poisons the rows, then applies ``changes``."""

    def change(content: Content) -> None:
        poison(content)
        content.update(changes)

    return lambda location: edit_cache(location, change)


def _poison_and_give_away(location: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("only root can give a file to another user")
    _poison()(location)
    os.chown(location, 65534, 65534)


def _nest_deeply(location: Path) -> None:
    # The JSON decoder recurses: this raises RecursionError, not ValueError.
    location.write_text("[" * 100_000)


def _link_to_a_doctored_copy(location: Path) -> None:
    # A link is never followed: whoever could place it chose its target.
    _poison()(location)
    target = location.with_name("doctored.txt")
    location.rename(target)
    location.symlink_to(target)


def _widen_rows(location: Path) -> None:
    def change(content: Content) -> None:
        poison(content)
        content["rows"] = [[*row, "x"] for row in content["rows"]]

    edit_cache(location, change)


def _number_in_rows(location: Path) -> None:
    def change(content: Content) -> None:
        poison(content)
        content["rows"] = [[*row[:-1], 6] for row in content["rows"]]

    edit_cache(location, change)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_truncate, id="damaged JSON"),
        pytest.param(lambda location: location.write_text("[]"), id="not an object"),
        pytest.param(lambda location: location.write_bytes(b"\xff\xfe"), id="binary"),
        pytest.param(
            _poison(format=_discovery_cache.CACHE_FORMAT + 1), id="another format"
        ),
        pytest.param(_poison(group="other.group"), id="another group"),
        pytest.param(_poison(search_path=["/elsewhere"]), id="another search path"),
        pytest.param(_poison(signature=None), id="no signature"),
        pytest.param(_widen_rows, id="rows of another width"),
        pytest.param(_number_in_rows, id="a number in the rows"),
        pytest.param(_poison(rows={"alpha": "alpha_backend"}), id="rows not a list"),
        pytest.param(_poison_and_give_away, id="another user's file"),
        pytest.param(_nest_deeply, id="deeply nested JSON"),
        pytest.param(_link_to_a_doctored_copy, id="a link to a doctored copy"),
    ],
)
def test_an_unusable_cache_file_is_ignored_and_replaced(
    damage: Callable[[Path], None], settled_site: Path, cache_dir: Path
) -> None:
    """A damaged, foreign or mismatched cache file is ignored, rewritten."""
    location = write_cache(cache_dir)

    damage(location)

    assert seen() == ALPHA
    content = json.loads(location.read_text())
    names = [row[0] for row in content["rows"]]
    assert "alpha" in names
    assert POISONED_NAME not in names
    assert location.stat().st_uid == os.getuid()


@pytest.mark.parametrize("below", ["cache", ""], ids=["under a file", "a file"])
def test_an_unwritable_cache_folder_only_costs_time(
    below: str,
    settled_site: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A file where the cache folder should be: no cache, and no error."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    folder = str(blocker / below) if below else str(blocker)
    monkeypatch.setenv(CACHE_DIR, folder)

    with caplog.at_level(logging.WARNING, logger=_discovery_cache.__name__):
        assert seen() == ALPHA
        assert seen() == ALPHA
    assert blocker.read_text() == "not a folder\n"

    # The folder was chosen by the user, so its failure is said, with the fix.
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    # Under a file, the system's own words say why (they vary by platform).
    problem = "" if below else "it is a file, not a folder"
    assert warnings[0].startswith(
        f"cannot write the discovery cache in BGSERVICE_CACHE_DIR={folder}: {problem}"
    )
    assert warnings[0].endswith(
        "; every call reads the installed metadata until it can; point "
        "BGSERVICE_CACHE_DIR at a folder you can write, or unset it"
    )


def test_a_folder_in_place_of_the_cache_file_only_costs_time(
    settled_site: Path, cache_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A folder where the cache file belongs: no error, no temp file left."""
    location = write_cache(cache_dir)
    location.unlink()
    location.mkdir()

    with caplog.at_level(logging.WARNING, logger=_discovery_cache.__name__):
        assert seen() == ALPHA
        assert seen() == ALPHA
    assert sorted(cache_dir.iterdir()) == [location]

    # The warning names what is in the way, not the temporary file.
    warning = caplog.records[0].getMessage()
    assert warning.startswith(
        f"cannot write the discovery cache in BGSERVICE_CACHE_DIR={cache_dir}: a "
        f"folder stands where its file belongs; delete {location}; "
    )


def test_a_cache_file_of_insane_size_is_ignored(
    settled_site: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache file above the size limit is not read, however it was made."""
    location = write_cache(cache_dir)
    edit_cache(location, poison)
    monkeypatch.setattr(_discovery_cache, "MAX_FILE_BYTES", 16)

    assert seen() == ALPHA


FIFO_PROBE = textwrap.dedent(
    """
    from bgservice_core._discovery import installed_entries
    print(sorted(entry.name for entry in installed_entries()))
    """
)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes here")
def test_a_pipe_in_place_of_the_cache_file_does_not_block(
    settled_site: Path, cache_dir: Path
) -> None:
    """A named pipe where the cache file belongs is skipped at once, then replaced."""

    def list_in_a_child() -> str:
        # In a child with a deadline: reading a pipe nobody writes would block.
        completed = subprocess.run(
            [sys.executable, "-P", "-c", FIFO_PROBE],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return completed.stdout

    list_in_a_child()
    [location] = cache_files(cache_dir)  # the child's own search path names it
    location.unlink()
    os.mkfifo(location)

    assert "'alpha'" in list_in_a_child()
    assert location.is_file()


class PhantomFinder:
    """A meta path finder supplying one distribution from outside sys.path."""

    def __init__(self, dist_info: Path) -> None:
        self.dist_info = dist_info

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> None:
        return None

    def find_distributions(
        self, context: importlib_metadata.DistributionFinder.Context
    ) -> Iterator[importlib_metadata.Distribution]:
        if context.name in (None, "cachetest-phantom"):
            yield importlib_metadata.PathDistribution(self.dist_info)


def test_another_distribution_finder_makes_the_cache_step_aside(
    settled_site: Path,
    cache_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A meta path finder that finds distributions makes every call scan."""
    write_cache(cache_dir)
    dist_info = install_distribution(
        tmp_path / "elsewhere",
        "cachetest-phantom",
        entry_points={"phantom": "phantom_backend"},
    )

    finder = PhantomFinder(dist_info)
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, finder])

    assert seen() == {
        **ALPHA,
        "phantom": ("cachetest-phantom", "1.0", "phantom_backend"),
    }
    assert len(cache_files(cache_dir)) == 1


# -- pruning ------------------------------------------------------------------

_DAY = 24 * 3600


def test_cache_files_unused_for_a_month_are_pruned(
    settled_site: Path, cache_dir: Path
) -> None:
    """A write deletes month-old cache files and hour-old temporary ones, only ours."""
    cache_dir.mkdir()
    ages = {
        "entry-points-00000031.json": 31 * _DAY,
        "entry-points-00000029.json": 29 * _DAY,
        "not-a-cache-file.txt": 40 * _DAY,
        "entry-points-design-notes.md": 40 * _DAY,
        "entry-points-0000abcd.json.12-34.tmp": 2 * 3600,
        "entry-points-0000abcd.json.56-78.tmp": 600,
    }
    # A folder under a cache file's name is not ours to delete, and must not
    # stop the others from being pruned.
    (cache_dir / "entry-points-0000dead.json").mkdir()
    for name in ages:
        (cache_dir / name).write_text("{}")
    for name, seconds in [*ages.items(), ("entry-points-0000dead.json", 40 * _DAY)]:
        when = time.time() - seconds
        os.utime(cache_dir / name, (when, when))

    written = write_cache(cache_dir)

    assert sorted(path.name for path in cache_dir.iterdir()) == sorted(
        [
            written.name,
            "entry-points-00000029.json",
            "not-a-cache-file.txt",
            "entry-points-design-notes.md",
            "entry-points-0000abcd.json.56-78.tmp",
            "entry-points-0000dead.json",
        ]
    )


# -- what a warm call costs ---------------------------------------------------

OPEN_PROBE = textwrap.dedent(
    """
    import json
    import logging
    import sys

    import bgservice_core

    class Gate:
        def set_gate(self, slug, suspended, deny_status, deny_reason):
            pass

    config = bgservice_core.Config(
        logger=logging.getLogger("probe"), gate=Gate(), node_id="probe.test"
    )
    [service] = bgservice_core.open("alpha", config)
    print(json.dumps({
        "service": type(service).__module__ + "." + type(service).__qualname__,
        "importlib_metadata": "importlib_metadata" in sys.modules,
    }))
    """
)


def test_a_warm_open_does_not_import_importlib_metadata(
    settled_site: Path, cache_dir: Path
) -> None:
    """With a valid cache, open() in a new process skips importlib_metadata."""

    def probe() -> dict[str, Any]:
        # -P keeps the working folder off sys.path, so out of the signature.
        completed = subprocess.run(
            [sys.executable, "-P", "-c", OPEN_PROBE],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        result: dict[str, Any] = json.loads(completed.stdout)
        return result

    cold = probe()
    assert len(cache_files(cache_dir)) == 1
    warm = probe()

    expected_service = "alpha_backend.QuietService"
    assert cold == {"service": expected_service, "importlib_metadata": True}
    assert warm == {"service": expected_service, "importlib_metadata": False}


# -- pip, end to end ----------------------------------------------------------


def build_wheel(folder: Path, version: str, module: str) -> Path:
    """Write a wheel of cachetest-pipdemo, backend ``pipdemo`` in ``module``."""
    dist_info = f"cachetest_pipdemo-{version}.dist-info"
    files = {
        f"{module}.py": textwrap.dedent(WELL_BEHAVED_MODULE),
        f"{dist_info}/METADATA": (
            f"Metadata-Version: 2.1\nName: cachetest-pipdemo\nVersion: {version}\n"
        ),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: bgservice-tests\n"
            "Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{dist_info}/entry_points.txt": f"[{GROUP}]\npipdemo = {module}\n",
    }
    record = [
        f"{name},{_wheel_hash(text)},{len(text.encode())}"
        for name, text in files.items()
    ]
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"

    wheel = folder / f"cachetest_pipdemo-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return wheel


def _wheel_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


PRINT_PURELIB = "import sysconfig; print(sysconfig.get_paths()['purelib'])"


class Venv:
    """A virtual environment borrowing pip and bgservice_core from this one."""

    def __init__(self, folder: Path) -> None:
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", str(folder)],
            check=True,
            timeout=120,
        )
        scripts = "Scripts" if os.name == "nt" else "bin"
        self.python = folder / scripts / "python"
        self.purelib = Path(self.run(PRINT_PURELIB))
        # addsitedir, not a bare path: it runs the .pth files there, among them
        # the one that makes bgservice_core importable from the source tree.
        ours = sysconfig.get_paths()["purelib"]
        (self.purelib / "borrowed.pth").write_text(
            f"import site; site.addsitedir({ours!r})\n"
        )
        self.search_path: list[str] = json.loads(
            self.run("import json, sys; print(json.dumps(sys.path))")
        )

    def run(self, code: str) -> str:
        """Run Python code in the environment and return what it printed."""
        return self._call("-P", "-c", code).strip()

    def pip(self, *arguments: str) -> None:
        """Run pip in the environment, without reaching any index."""
        self._call(
            "-m",
            "pip",
            *arguments,
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--quiet",
        )

    def listed(self) -> dict[str, tuple[str, str]]:
        """Return the cachetest rows of ``bgservice list --json``, by name."""
        rows = json.loads(
            self._call("-P", "-m", "bgservice_core._cli", "list", "--json")
        )
        return {
            row["name"]: (row["version"], row["entry_point"])
            for row in rows
            if row["distribution"].startswith(PREFIX)
        }

    def _call(self, *arguments: str) -> str:
        completed = subprocess.run(
            [str(self.python), *arguments],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "PIP_ROOT_USER_ACTION": "ignore"},
            timeout=120,
        )
        assert completed.returncode == 0, completed.stderr
        return completed.stdout


def test_pip_install_upgrade_and_uninstall_are_seen(
    tmp_path: Path, cache_dir: Path
) -> None:
    """pip install, upgrade and uninstall are each seen by the next listing."""
    venv = Venv(tmp_path / "venv")
    first = build_wheel(tmp_path, "1.0", "pipdemo_v1")
    second = build_wheel(tmp_path, "2.0", "pipdemo_v2")

    venv.pip("install", "--no-index", "--no-deps", str(first))
    wait_until_settled(venv.purelib, search_path=venv.search_path)
    assert venv.listed() == {"pipdemo": ("1.0", "pipdemo_v1")}
    [location] = cache_files(cache_dir)
    rows = json.loads(location.read_text())["rows"]
    assert "pipdemo" in [row[0] for row in rows]
    assert venv.listed() == {"pipdemo": ("1.0", "pipdemo_v1")}

    venv.pip("install", "--no-index", "--no-deps", str(second))
    assert venv.listed() == {"pipdemo": ("2.0", "pipdemo_v2")}

    venv.pip("uninstall", "--yes", "cachetest-pipdemo")
    assert venv.listed() == {}
