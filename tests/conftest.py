"""Fixtures shared by the core's tests.

``site_dir`` is an empty directory on ``sys.path`` into which tests install
throwaway distributions with :func:`install_distribution`: the same dist-info
layout an installer writes (METADATA, RECORD, INSTALLER, entry_points.txt), plus
the distribution's modules. Discovery then finds them through importlib-metadata
exactly as it finds a pip-installed backend.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import bgservice_core
from bgservice_core import _discovery
from tests.distributions import first_on_path, install_distribution

__all__ = ["install_distribution"]

#: The run's cache folder, and the BGSERVICE_CACHE_DIR it replaced.
_CACHE_DIR = pytest.StashKey[tuple[str, "str | None"]]()


def pytest_configure(config: pytest.Config) -> None:
    """Keep the discovery cache of the whole run, subprocesses too, in a temp folder.

    The suite installs and removes many throwaway backends; their cache files
    must not land in the user's own cache folder.
    """
    folder = tempfile.mkdtemp(prefix="bgservice-cache-")
    config.stash[_CACHE_DIR] = (folder, os.environ.get("BGSERVICE_CACHE_DIR"))
    os.environ["BGSERVICE_CACHE_DIR"] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the run's cache folder and restore the variable."""
    folder, before = config.stash[_CACHE_DIR]
    shutil.rmtree(folder, ignore_errors=True)
    if before is None:
        os.environ.pop("BGSERVICE_CACHE_DIR", None)
    else:
        os.environ["BGSERVICE_CACHE_DIR"] = before


@pytest.fixture
def site_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty site directory first on ``sys.path`` and on ``PYTHONPATH``.

    Modules imported from it are forgotten afterwards, so that a later test may
    install a module of the same name with other contents.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    with first_on_path(site, monkeypatch):
        yield site


@pytest.fixture(autouse=True)
def _forget_registrations() -> Iterator[None]:
    """Undo in-process registrations a test made."""
    before = {entry.name for entry in _discovery.registered_entries()}
    yield
    for entry in _discovery.registered_entries():
        if entry.name not in before:
            bgservice_core.unregister(entry.name)


class RecordingGate:
    """A Gate that remembers its calls, for tests that need a Gate at hand."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bool, int, str]] = []

    def set_gate(
        self, slug: str, suspended: bool, deny_status: int, deny_reason: str
    ) -> None:
        self.calls.append((slug, suspended, deny_status, deny_reason))


@pytest.fixture
def config() -> bgservice_core.Config:
    """A Config with a recording gate and a test logger."""
    return bgservice_core.Config(
        logger=logging.getLogger("tests.chassis"),
        gate=RecordingGate(),
        node_id="node-1.test.example",
    )
