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
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bgservice_core
from bgservice_core import _discovery
from tests.distributions import install_distribution

__all__ = ["install_distribution"]


@pytest.fixture
def site_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty site directory first on ``sys.path`` and on ``PYTHONPATH``.

    Modules imported from it are forgotten afterwards, so that a later test may
    install a module of the same name with other contents.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    inherited = os.environ.get("PYTHONPATH")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(site), inherited]))
    )
    before = set(sys.modules)
    yield site
    for name in set(sys.modules) - before:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if module_file.startswith(str(site)):
            del sys.modules[name]


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
