"""Writing installed distributions by hand, in the layout an installer produces."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import sys
import textwrap
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

GROUP = "bgservice.backends"

#: A well-behaved backend module: a service that does nothing, politely.
WELL_BEHAVED_MODULE = """
from bgservice_core import hookimpl


class QuietService:
    def __init__(self, config):
        self.config = config
        self.started = False
        self.stopped = False

    def start(self):
        self.started = True

    def stop(self):
        self.stopped = True


@hookimpl
def bgservice_build_service(config):
    return QuietService(config)
"""


@contextlib.contextmanager
def first_on_path(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Put ``site`` first on ``sys.path`` and on ``PYTHONPATH`` for a test.

    Modules imported from it are forgotten afterwards, so that a later test may
    install a module of the same name with other contents.
    """
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


def install_distribution(
    site: Path,
    name: str,
    *,
    version: str = "1.0",
    entry_points: Mapping[str, str] | None = None,
    group: str = GROUP,
    modules: Mapping[str, str] | None = None,
    summary: str = "",
) -> Path:
    """Write distribution ``name`` into ``site`` and return its dist-info folder.

    :param entry_points: entry-point name to value, in ``group``.
    :param modules: module file path relative to ``site`` (e.g. ``"pkg.py"`` or
        ``"pkg/__init__.py"``) to its source, dedented.
    """
    files: dict[str, bytes] = {}
    for relative, source in (modules or {}).items():
        files[relative] = textwrap.dedent(source).lstrip().encode()

    normalized = name.replace("-", "_").replace(".", "_")
    dist_info = f"{normalized}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
    if summary:
        metadata += f"Summary: {summary}\n"
    files[f"{dist_info}/METADATA"] = metadata.encode()
    files[f"{dist_info}/INSTALLER"] = b"pip\n"
    if entry_points:
        lines = [f"[{group}]"] + [f"{k} = {v}" for k, v in entry_points.items()]
        files[f"{dist_info}/entry_points.txt"] = ("\n".join(lines) + "\n").encode()

    for relative, content in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (site / dist_info / "RECORD").write_text(_record(files, dist_info))
    return site / dist_info


def _record(files: Mapping[str, bytes], dist_info: str) -> str:
    rows = []
    for relative, content in sorted(files.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest())
        rows.append(f"{relative},sha256={digest.rstrip(b'=').decode()},{len(content)}")
    rows.append(f"{dist_info}/RECORD,,")
    return "\n".join(rows) + "\n"
