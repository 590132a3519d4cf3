"""File helpers shared by the core's tests."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Make ``path`` unwritable for this process, even when it runs as root."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        yield
        return
    # Root ignores permission bits; only the immutable attribute stops it.
    if subprocess.run(["chattr", "+i", str(path)], check=False).returncode != 0:
        pytest.skip("cannot make a file read-only for root here (chattr +i failed)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
