"""Remembering the backend group between processes, checked against the disk.

Listing an entry-point group means reading the ``entry_points.txt`` of every
installed distribution: most of the time a chassis spends in ``open`` goes
there, and the answer changes only when something is installed, removed or
edited. So the answer is kept in a small JSON file per ``sys.path``, together
with a *signature* of everything it was read from:

- the names of the metadata folders in each ``sys.path`` folder, which change
  when one is added, removed or renamed there (an install, an uninstall, an
  upgrade); other files coming and going there do not count,
- every distribution's metadata folder, which changes when a file in it is
  added, removed or replaced, and
- every ``entry_points.txt``, which catches an edit in place, such as
  setuptools rewriting the ``.egg-info`` of a legacy editable install, and
- the metadata file of a distribution whose folder does not carry its name (an
  egg's ``EGG-INFO``), since that file then names it.

What is cached is where each entry point of the group is declared: its name,
its value and its distribution's folder. The distribution's name, version and
summary are read from that folder when they are asked for, so they are never
stale either.

Each item contributes its inode, size, and change and modification times, so
the signature costs one ``stat`` per item and one listing per ``sys.path``
folder, and reads no file. Every use
recomputes it, and a cached answer is used only when it is unchanged; so the
call right after a change always sees the change.

Two details keep that promise:

- File times are coarse: a change made within the same clock tick as the state
  that was cached could leave every time as it was. An answer is therefore
  written only when everything it was read from is older than a few seconds
  (git does the same with its index). Right after an install, calls read the
  metadata until it has settled.
- The signature only knows the filesystem search that importlib-metadata
  performs on ``sys.path``. When another finder on ``sys.meta_path`` can supply
  distributions, the cache steps aside and every call reads the metadata.

A cache that cannot be read or written (no home folder, a read-only disk, a
damaged file) is skipped, never an error: it only ever saves time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
import sys
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from importlib.machinery import PathFinder
from typing import TypeGuard, TypeVar

from bgservice_core._errors import SettingError

logger = logging.getLogger(__name__)

#: Where the cache files go; by default the user's cache folder, under bgservice.
CACHE_DIR_VARIABLE = "BGSERVICE_CACHE_DIR"

#: ``off`` makes every call read the installed metadata.
SWITCH_VARIABLE = "BGSERVICE_DISCOVERY_CACHE"

_SWITCH_VALUES = {
    "on": True,
    "true": True,
    "yes": True,
    "1": True,
    "off": False,
    "false": False,
    "no": False,
    "0": False,
}

#: Raised whenever the file's layout or the meaning of its rows changes, so that
#: an older bgservice's cache file is never read as this one's.
CACHE_FORMAT = 2

#: How old everything the answer was read from must be before it is cached: far
#: above any filesystem's clock tick, and above FAT's two seconds.
SETTLE_SECONDS = 2.0

#: A cache file left unwritten this long is deleted by the next process that
#: writes one: a virtual environment or working folder that is gone leaves its
#: file behind, and a file still in use is merely written again.
PRUNE_AFTER_SECONDS = 30 * 24 * 3600

#: A larger file is not one this module wrote: a signature line is about 100
#: bytes, so this allows several hundred thousand distributions.
MAX_FILE_BYTES = 64 * 1024 * 1024

#: A temporary file this old was left by a writer that was killed: a write
#: takes milliseconds.
ABANDONED_AFTER_SECONDS = 3600

#: The names of cache files and of their temporary files, and nothing else.
_OWN_FILE = re.compile(r"entry-points-[0-9a-f]{8}\.json(\.[0-9]+-[0-9]+\.tmp)?")

#: Rows are lists of strings; their meaning belongs to the caller.
Rows = list[list[str]]

Answer = TypeVar("Answer")


def cached_scan(
    group: str,
    scan: Callable[[], tuple[Answer, Rows | None]],
    answer_from: Callable[[Rows], Answer],
    width: int,
) -> Answer:
    """Answer from the cache when it is valid for ``group``, or else from ``scan``.

    :param group: the entry-point group; it names the cache file.
    :param scan: reads the installed metadata; returns the answer and the rows
        of strings to cache, or None for rows when this answer cannot be cached.
    :param answer_from: turns cached rows back into an answer.
    :param width: how many strings a row holds; a file whose rows differ is
        not this caller's, and is ignored.
    :raises SettingError: a cache setting in the environment is malformed.
    """
    directory = cache_directory()
    if directory is None:
        return scan()[0]
    search_path = _search_path()
    if search_path is None or _other_finders():
        return scan()[0]

    location = os.path.join(directory, _file_name(group, search_path))
    signature, newest = _signature(search_path)
    cached = _read(location, group, search_path, width)
    if cached is not None and cached[0] == signature:
        return answer_from(cached[1])

    # The signature was taken before the scan: a change made during the scan
    # leaves it stale, so the next call scans again rather than trusting it.
    answer, rows = scan()
    if rows is None:
        logger.debug("not caching %s: its metadata cannot be located", group)
    elif newest >= time.time_ns() - int(SETTLE_SECONDS * 1e9):
        logger.debug(
            "not caching %s: the metadata changed moments ago, or carries a time "
            "in the future",
            group,
        )
    else:
        _write(directory, location, group, search_path, signature, rows)
    return answer


def cache_directory() -> str | None:
    """Return the folder for cache files, or None when the cache is switched off.

    :raises SettingError: ``BGSERVICE_DISCOVERY_CACHE`` is not on or off, or
        ``BGSERVICE_CACHE_DIR`` is blank or relative.
    """
    # Both settings are checked even when the cache is off, so that a mistake
    # shows at once rather than on the day the cache is switched back on.
    switch = os.environ.get(SWITCH_VARIABLE, "on")
    enabled = _SWITCH_VALUES.get(switch.strip().lower())
    if enabled is None:
        raise SettingError(
            SWITCH_VARIABLE,
            switch,
            "on or off (or true/false, yes/no, 1/0), or leave it unset for on",
        )

    chosen = os.environ.get(CACHE_DIR_VARIABLE)
    if chosen is not None and (not chosen.strip() or not os.path.isabs(chosen)):
        raise SettingError(
            CACHE_DIR_VARIABLE,
            chosen,
            "an absolute path to a folder, or leave it unset for the user's cache "
            "folder",
        )
    if not enabled:
        return None
    return chosen if chosen is not None else _user_cache_directory()


def _user_cache_directory() -> str | None:
    # The rule of platformdirs' user_cache_dir("bgservice"), written out because
    # importing platformdirs would cost more than a cached open saves.
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA")
        return os.path.join(base, "bgservice", "Cache") if base else None
    chosen = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(chosen):  # the XDG rule: a relative value is ignored
        return os.path.join(chosen, "bgservice")
    # An empty HOME would expand "~" to "/", and a relative one is no home.
    home = os.path.expanduser("~")
    if os.environ.get("HOME") == "" or not os.path.isabs(home):
        return None
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Caches", "bgservice")
    return os.path.join(home, ".cache", "bgservice")


def _search_path() -> list[str] | None:
    """Return sys.path with relative entries joined to the working folder.

    importlib-metadata searches each entry as it is, "" meaning the working
    folder, so two working folders must not share an answer. The entries are
    not tidied up: "link/.." is not where the text without it points.
    """
    if not all(isinstance(entry, str) for entry in sys.path):
        return None
    try:
        working_folder = os.getcwd()
    except OSError:
        return None  # it was deleted: relative entries name nothing stable
    return [os.path.join(working_folder, entry) for entry in sys.path]


def _other_finders() -> bool:
    """Say whether a finder other than the path search can supply distributions."""
    for finder in sys.meta_path:
        if finder is PathFinder or not hasattr(finder, "find_distributions"):
            continue
        module = getattr(finder, "__module__", type(finder).__module__)
        name = getattr(finder, "__qualname__", type(finder).__qualname__)
        # importlib-metadata adds a finder of its own that searches sys.path too.
        if (module, name) != ("importlib_metadata", "MetadataPathFinder"):
            logger.debug("discovery cache off: %s.%s finds distributions", module, name)
            return True
    return False


def _file_name(group: str, search_path: Sequence[str]) -> str:
    # A short checksum names the file; the file repeats the full key, so a
    # collision costs a scan, never a wrong answer.
    key = "\0".join([str(CACHE_FORMAT), group, *search_path])
    checksum = zlib.crc32(key.encode("utf-8", "surrogateescape"))
    return f"entry-points-{checksum:08x}.json"


def _signature(search_path: Sequence[str]) -> tuple[str, int]:
    """Describe every file the answer depends on; return it and the newest time."""
    lines: list[str] = []
    newest = 0
    for entry in search_path:
        try:
            status = os.stat(entry)
        except OSError:
            lines.append(f"{entry}\t-")
            continue
        if not stat.S_ISDIR(status.st_mode):
            # A zip file: its own description covers it.
            described, entry_newest = _describe_status(status)
            lines.append(f"{entry}\t{described}")
            newest = max(newest, entry_newest)
            continue

        # A folder counts by the metadata folders it holds, not by its own
        # times: a log or a database journal coming and going in a working
        # folder on sys.path changes nothing that is installed.
        lines.append(f"{entry}\td\t{status.st_ino}")
        metadata_folders = _metadata_folders(entry)
        if metadata_folders is None:
            lines.append(f"{entry}\tunreadable")
            continue
        for child in metadata_folders:
            for line, line_newest in _distribution_lines(child):
                lines.append(line)
                newest = max(newest, line_newest)
    return "\n".join(lines), newest


def _metadata_folders(entry: str) -> list[os.DirEntry[str]] | None:
    """Return the children of ``entry`` that importlib-metadata reads, by name.

    Those are the ``.dist-info`` and ``.egg-info`` folders, and the
    ``EGG-INFO`` of an ``.egg`` folder on sys.path; None if it cannot be read.
    """
    inside_egg = entry.lower().endswith(".egg")
    try:
        with os.scandir(entry) as children:
            found = [
                child
                for child in children
                if child.name.lower().endswith((".dist-info", ".egg-info"))
                or (inside_egg and child.name.lower() == "egg-info")
            ]
    except OSError:
        return None
    # Sorted, so that the order a filesystem lists names in never matters.
    return sorted(found, key=lambda child: child.name)


def _distribution_lines(child: os.DirEntry[str]) -> list[tuple[str, int]]:
    # The folder changes when a file in it is added, removed or replaced, as
    # when METADATA appears or an installer replaces a file; entry_points.txt
    # may also be rewritten in place, which only its own times show.
    described, newest = _describe(child.path)
    lines = [(f"{child.name}\t{described}", newest)]
    if not described.startswith("d"):
        return lines

    watched = ["entry_points.txt"]
    if not child.name.endswith((".dist-info", ".egg-info")):
        # importlib-metadata takes a distribution's name from a folder named
        # "name-version.dist-info", but from the metadata itself for any other
        # name ("EGG-INFO" in an egg); it tells which copy of a distribution
        # counts, so then an edit of the metadata in place matters too.
        watched += ["METADATA", "PKG-INFO"]
    for filename in watched:
        described, newest = _describe(os.path.join(child.path, filename))
        lines.append((f"{child.name}/{filename}\t{described}", newest))
    return lines


def _describe(path: str) -> tuple[str, int]:
    try:
        status = os.stat(path)
    except OSError:
        return "-", 0
    return _describe_status(status)


def _describe_status(status: os.stat_result) -> tuple[str, int]:
    kind = "d" if stat.S_ISDIR(status.st_mode) else "f"
    # On POSIX the change time moves with any edit, even one that restores the
    # modification time; on Windows it is the creation time, hence both.
    described = (
        f"{kind}\t{status.st_ino}\t{status.st_size}\t"
        f"{status.st_mtime_ns}\t{status.st_ctime_ns}"
    )
    return described, max(status.st_mtime_ns, status.st_ctime_ns)


def _read(
    location: str, group: str, search_path: list[str], width: int
) -> tuple[str, Rows] | None:
    """Return the signature and rows of a cache file made for this search path."""
    text = _read_own_file(location)
    if text is None:
        return None
    try:
        cached = json.loads(text)
    except (ValueError, RecursionError) as err:  # deep nesting raises the latter
        logger.debug("ignoring the discovery cache %s: %s", location, err)
        return None

    expected = {"format": CACHE_FORMAT, "group": group, "search_path": search_path}
    if not isinstance(cached, dict) or any(
        cached.get(key) != value for key, value in expected.items()
    ):
        return None
    signature, rows = cached.get("signature"), cached.get("rows")
    if not isinstance(signature, str) or not _valid_rows(rows, width):
        return None
    return signature, rows


def _read_own_file(location: str) -> bytes | None:
    """Return the bytes of a regular file of ours at ``location``, or None.

    Opened without following a link and without waiting, then checked: a pipe,
    a device or a link someone put in the cache folder could otherwise block
    discovery or feed it without end.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        descriptor = os.open(location, flags)
    except FileNotFoundError:
        return None
    except OSError as err:
        logger.debug("ignoring the discovery cache %s: %s", location, err)
        return None

    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_size > MAX_FILE_BYTES:
            logger.debug("ignoring %s: not a cache file of a sane size", location)
            return None
        if hasattr(os, "getuid") and status.st_uid != os.getuid():
            # A cache in a shared folder must not let another user choose
            # what this process imports.
            logger.debug("ignoring %s: another user owns it", location)
            return None
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            return file.read()
    except OSError as err:
        logger.debug("ignoring the discovery cache %s: %s", location, err)
        return None
    finally:
        os.close(descriptor)


def _valid_rows(rows: object, width: int) -> TypeGuard[Rows]:
    return isinstance(rows, list) and all(
        isinstance(row, list)
        and len(row) == width
        and all(isinstance(cell, str) for cell in row)
        for row in rows
    )


def _write(
    directory: str,
    location: str,
    group: str,
    search_path: list[str],
    signature: str,
    rows: Rows,
) -> None:
    content = {
        "format": CACHE_FORMAT,
        "group": group,
        "search_path": search_path,
        "signature": signature,
        "rows": rows,
    }
    # Written beside its final name and renamed over it, so that a reader sees
    # the old file or the new one, never half of one. The name is this
    # thread's own, so that writers never share a file; it must not exist yet,
    # so that nothing planted under that name is written through.
    temporary = f"{location}.{os.getpid()}-{threading.get_ident()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        descriptor = os.open(temporary, flags, 0o600)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                json.dump(content, file, separators=(",", ":"))
            os.replace(temporary, location)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as err:
        # The default folder failing is ordinary (a read-only home in a
        # container); a folder the user named should work, so say why not.
        if directory == os.environ.get(CACHE_DIR_VARIABLE):
            problem = str(err)
            if os.path.exists(directory) and not os.path.isdir(directory):
                problem = "it is a file, not a folder"
            elif os.path.isdir(location):
                problem = f"a folder stands where its file belongs; delete {location}"
            logger.warning(
                "cannot write the discovery cache in %s=%s: %s; every call reads "
                "the installed metadata until it can; point %s at a folder you "
                "can write, or unset it",
                CACHE_DIR_VARIABLE,
                directory,
                problem,
                CACHE_DIR_VARIABLE,
            )
        else:
            logger.debug("not caching %s in %s: %s", group, directory, err)
        return
    _prune(directory)


def _prune(directory: str) -> None:
    """Delete the cache files nobody has written for a month, and abandoned ones."""
    now = time.time()
    try:
        with os.scandir(directory) as children:
            candidates = [
                child for child in children if _OWN_FILE.fullmatch(child.name)
            ]
    except OSError as err:
        logger.debug("could not prune the discovery cache in %s: %s", directory, err)
        return

    for child in candidates:
        limit = PRUNE_AFTER_SECONDS
        if child.name.endswith(".tmp"):
            limit = ABANDONED_AFTER_SECONDS
        try:
            status = child.stat(follow_symlinks=False)
            if (
                stat.S_ISREG(status.st_mode)
                and (not hasattr(os, "getuid") or status.st_uid == os.getuid())
                and status.st_mtime < now - limit
            ):
                os.unlink(child.path)
        except OSError as err:
            # Another process may be pruning too; the next write tries again.
            logger.debug("could not prune %s: %s", child.path, err)
