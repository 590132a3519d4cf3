"""Waiting until installed metadata is old enough for the discovery cache.

The cache writes an answer only when everything it was read from is older than
``SETTLE_SECONDS``, because file times are coarse. Tests that need a written
cache therefore wait for the real clock rather than fake it: a faked clock or a
shorter settle time would bring back the very race the rule guards against.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from pathlib import Path

from bgservice_core._discovery_cache import SETTLE_SECONDS

#: Waited beyond SETTLE_SECONDS, so that a time equal to the limit never decides.
MARGIN_SECONDS = 0.1

_METADATA_SUFFIXES = (".dist-info", ".egg-info")


def wait_until_settled(*trees: Path | str, search_path: Iterable[str] = ()) -> None:
    """Sleep until nothing in ``trees`` or the metadata on ``search_path`` is new.

    :param trees: folders whose every file and subfolder counts, themselves too.
    :param search_path: ``sys.path``-like entries; each entry, its metadata
        folders and their files count, as they do for the cache's signature.
    """
    entries = list(search_path)
    while True:
        newest = max(
            [_newest_in_tree(Path(tree)) for tree in trees]
            + [_newest_on_entry(entry) for entry in entries],
            default=0,
        )
        # Something may change while we sleep: check again after each wait.
        remaining = newest / 1e9 + SETTLE_SECONDS + MARGIN_SECONDS - time.time()
        if remaining <= 0:
            return
        time.sleep(remaining)


def _newest_in_tree(tree: Path) -> int:
    newest = _changed_ns(tree)
    for folder, subfolders, files in os.walk(tree):
        for name in [*subfolders, *files]:
            newest = max(newest, _changed_ns(Path(folder, name)))
    return newest


def _newest_on_entry(entry: str) -> int:
    newest = _changed_ns(Path(entry))
    try:
        children = [
            Path(entry, name)
            for name in os.listdir(entry or ".")
            if name.lower().endswith(_METADATA_SUFFIXES)
        ]
    except OSError:
        return newest  # a zip file or a missing folder: its own times count

    for child in children:
        newest = max(newest, _changed_ns(child))
        if child.is_dir():
            newest = max([newest, *(_changed_ns(item) for item in child.iterdir())])
    return newest


def _changed_ns(path: Path) -> int:
    """Return the later of the modification and change times, 0 if missing."""
    try:
        status = path.lstat()
    except OSError:
        return 0
    return max(status.st_mtime_ns, status.st_ctime_ns)
