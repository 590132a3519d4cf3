"""Finding backends: installed entry points, and constructors registered in-process.

Discovery reads distribution metadata only; nothing here imports a backend.
Python's own rules decide which copy of a distribution counts: when the same
distribution is reachable through several ``sys.path`` entries, importlib-metadata
reports the first one, which is also the one ``import`` would load. What it
reports is remembered between processes by :mod:`bgservice_core._discovery_cache`,
which checks the files it came from on every call.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import threading
from collections.abc import Iterable
from typing import Protocol

from bgservice_core import _discovery_cache
from bgservice_core._contract import Constructor
from bgservice_core._errors import (
    ENTRY_POINT_GROUP,
    REGISTERED_IN_PROCESS,
    BackendConflictError,
    BackendLoadError,
)

logger = logging.getLogger(__name__)

#: The placeholder that means "no service" in a backend list.
NOP = "nop"

#: A backend name may not contain what the list syntax gives a meaning to.
_VALID_NAME = re.compile(r"[^\s,]+")

#: The metadata fields a BackendEntry carries, as lowercase header names.
_IDENTITY_FIELDS = ("name", "version", "summary")


class MetadataFiles(Protocol):
    """What discovery needs of a distribution: the text of its metadata files."""

    def read_text(self, filename: str) -> str | None:
        """Return the named file's text, or None if there is none."""


@dataclasses.dataclass(frozen=True)
class BackendEntry:
    """One place a backend name comes from.

    :param name: the backend name, as written in a backend list.
    :param value: the entry point's ``module:attribute``, or the qualified name
        of a constructor registered in-process.
    :param distribution: the distribution that advertises it.
    :param version: that distribution's version.
    :param summary: that distribution's one-line summary.
    :param constructor: the constructor of a backend registered in-process;
        None for an installed one.
    """

    name: str
    value: str
    distribution: str
    version: str
    summary: str = ""
    constructor: Constructor | None = dataclasses.field(
        default=None, repr=False, compare=False
    )

    @property
    def installed(self) -> bool:
        """True for an installed entry point, False for an in-process registration."""
        return self.constructor is None

    def load(self) -> object:
        """Import the installed entry point and return what it names, the plugin.

        :raises ValueError: this backend is registered in-process, or the entry
            point's value is not a ``module:attribute`` reference.
        :raises Exception: whatever importing the backend raises.
        """
        if not self.installed:
            raise ValueError(
                f"backend {self.name!r} is registered in-process: use its "
                "constructor, there is no entry point to load"
            )
        # Imported on use: a process that loads no backend does not need it.
        import pkgutil

        # An entry point's value is "module", "module:attribute" or either with
        # "[extras]"; extras do not change what is loaded.
        reference = "".join(self.value.partition("[")[0].split())
        if ":" not in reference:
            reference += ":"  # import the module itself, as importlib-metadata does
        return pkgutil.resolve_name(reference)

    def describe(self) -> str:
        """Say where this backend comes from, for messages."""
        if not self.installed:
            return f"{self.name!r} ({REGISTERED_IN_PROCESS} {self.value})"
        return (
            f"{self.name!r} (entry point {self.value!r} in group "
            f"{ENTRY_POINT_GROUP!r}, distribution {self.distribution} {self.version})"
        )

    def claimant(self) -> str:
        """Say who offers this name, for a conflict message."""
        if not self.installed:
            return f"{REGISTERED_IN_PROCESS}: {self.value}"
        return f"distribution {self.distribution} {self.version}: {self.value}"


_registry: dict[str, BackendEntry] = {}
_registry_lock = threading.Lock()


def register(name: str, constructor: Constructor) -> None:
    """Make ``constructor`` available as backend ``name`` in this process.

    Meant for embedding and tests; installed backends need no registration.

    :raises TypeError: the name is not a string, or the constructor is not
        callable.
    :raises ValueError: the name is not a valid backend name.
    :raises BackendConflictError: the name is already registered, or an
        installed distribution already advertises it.
    """
    check_backend_name(name)
    if not callable(constructor):
        raise TypeError(
            f"cannot register backend {name!r}: constructor {constructor!r} is not "
            "callable; pass a function or class that takes a Config"
        )
    entry = BackendEntry(
        name=name,
        value=_qualified_name(constructor),
        distribution=REGISTERED_IN_PROCESS,
        version="",
        constructor=constructor,
    )

    with _registry_lock:
        clashes = list(installed_entries(name))
        if name in _registry:
            clashes.append(_registry[name])
        if clashes:
            raise BackendConflictError(name, [c.claimant() for c in [*clashes, entry]])
        _registry[name] = entry
    logger.debug("registered backend %r in-process: %s", name, entry.value)


def unregister(name: str) -> None:
    """Forget a backend registered with :func:`register`; unknown names are ignored."""
    with _registry_lock:
        _registry.pop(name, None)


def check_backend_name(name: str) -> None:
    """Reject a name that a backend list could never select."""
    if not isinstance(name, str):
        raise TypeError(
            f"invalid backend name {name!r}: expected a str, got {type(name).__name__}"
        )
    if not _VALID_NAME.fullmatch(name) or name == NOP:
        raise ValueError(
            f"invalid backend name {name!r}: a name is a non-empty string without "
            f"whitespace or commas, and {NOP!r} is reserved for 'no service'"
        )


def backend_name_problem(name: str) -> str | None:
    """Say why a backend list could never select ``name``; None if it can."""
    try:
        check_backend_name(name)
    except ValueError as err:
        return str(err)
    return None


@dataclasses.dataclass(frozen=True)
class InstalledEntryPoint:
    """An entry point of the group, and the files of the distribution declaring it."""

    name: str
    value: str
    metadata: MetadataFiles

    def entry(self) -> BackendEntry:
        """Return the BackendEntry, reading the distribution's name and version now."""
        fields = identity_fields(self.metadata)
        return BackendEntry(
            name=self.name,
            value=self.value,
            distribution=fields.get("name") or "(unnamed distribution)",
            version=fields.get("version", ""),
            summary=fields.get("summary", ""),
        )


def installed_entry_points() -> list[InstalledEntryPoint]:
    """Return the group's entry points, in the order importlib-metadata finds them.

    Answered from the discovery cache when nothing it was read from changed;
    otherwise every distribution's entry_points.txt is read. No METADATA is.
    """
    return _discovery_cache.cached_scan(
        ENTRY_POINT_GROUP, _scan_installed, _from_cached_rows, width=3
    )


def installed_entries(name: str | None = None) -> list[BackendEntry]:
    """Return the installed entry points of the group, optionally of one name only.

    Only the distributions of the entries returned have their METADATA read.
    """
    return [
        installed.entry()
        for installed in installed_entry_points()
        if name is None or installed.name == name
    ]


def registered_entries() -> list[BackendEntry]:
    """Return the backends registered in-process."""
    with _registry_lock:
        return list(_registry.values())


def discover_backends() -> dict[str, list[BackendEntry]]:
    """Return every available backend by name, sorted by name.

    A name with more than one entry is a conflict; its entries are sorted by
    distribution so the order does not depend on ``sys.path``.
    """
    by_name: dict[str, list[BackendEntry]] = {}
    for entry in [*installed_entries(), *registered_entries()]:
        claimants = by_name.setdefault(entry.name, [])
        if entry not in claimants:
            claimants.append(entry)
    return {name: sorted(by_name[name], key=_sort_key) for name in sorted(by_name)}


def resolve(name: str, installed: Iterable[BackendEntry]) -> BackendEntry:
    """Return the one entry offering ``name``, among ``installed`` and the registry.

    :raises BackendConflictError: more than one distinct source offers it.
    :raises BackendLoadError: the name is one ``register()`` would refuse.
    """
    claimants: list[BackendEntry] = []
    for entry in installed:
        if entry.name == name and entry not in claimants:
            claimants.append(entry)
    with _registry_lock:
        if name in _registry:
            claimants.append(_registry[name])

    if len(claimants) > 1:
        raise BackendConflictError(name, [entry.claimant() for entry in claimants])
    # A name with whitespace inside survives the list syntax, but the same
    # rules apply to installed names as to registered ones.
    problem = backend_name_problem(name)
    if problem is not None:
        raise BackendLoadError(
            claimants[0], f"{problem}; its distribution must rename the entry point"
        )
    return claimants[0]


def _scan_installed() -> tuple[list[InstalledEntryPoint], list[list[str]] | None]:
    """Read the group from the installed metadata; also return the rows to cache."""
    # Imported on use: a cached answer needs neither it nor its imports.
    import importlib_metadata

    found: list[InstalledEntryPoint] = []
    rows: list[list[str]] | None = []
    for entry_point in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = entry_point.dist
        folder = _metadata_folder(distribution)
        # Read as a cached answer reads it, so that both report the same.
        metadata: MetadataFiles = _NO_METADATA if distribution is None else distribution
        if folder is not None:
            metadata = MetadataFolder(folder)
        found.append(InstalledEntryPoint(entry_point.name, entry_point.value, metadata))

        if folder is None or rows is None:
            rows = None  # the cache could not find this one's metadata again
        else:
            rows.append([entry_point.name, entry_point.value, folder])
    return found, rows


def _metadata_folder(distribution: object) -> str | None:
    """Return the folder (or egg-info file) a distribution reads its metadata from.

    importlib-metadata offers no public name for it: a distribution found on
    ``sys.path`` keeps it in ``_path``, which it has done since its first
    release. Anything else (a zip archive, another kind of distribution) has
    no folder, and an answer that includes it is simply not cached.
    """
    import pathlib

    folder = getattr(distribution, "_path", None)
    if isinstance(folder, pathlib.Path) and os.path.isabs(folder):
        return str(folder)
    return None


def _from_cached_rows(rows: list[list[str]]) -> list[InstalledEntryPoint]:
    return [
        InstalledEntryPoint(name, value, MetadataFolder(folder))
        for name, value, folder in rows
    ]


class MetadataFolder:
    """The metadata files of an installed distribution, read from its folder."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def read_text(self, filename: str) -> str | None:
        """Return the named file's text, or None if there is none.

        As importlib-metadata does, an empty name reads an egg-info file itself.
        """
        path = os.path.join(self.folder, filename) if filename else self.folder
        try:
            # Metadata is UTF-8; a stray byte costs a character, not the listing.
            with open(path, encoding="utf-8", errors="replace") as file:
                return file.read()
        except (
            FileNotFoundError,
            IsADirectoryError,
            NotADirectoryError,
            PermissionError,  # importlib-metadata treats an unreadable file as absent
        ):
            return None


class _NoMetadata:
    """The metadata of an entry point that has no distribution: none at all."""

    def read_text(self, filename: str) -> str | None:
        return None


_NO_METADATA = _NoMetadata()


def identity_fields(distribution: MetadataFiles) -> dict[str, str]:
    """Return a distribution's Name, Version and Summary, keyed in lowercase.

    The values are those ``distribution.metadata`` gives, read from the header
    block of the same file, without the email parser behind ``metadata``:
    importing that parser costs more than the rest of an ``open``, and parsing
    every long description is most of the cost of listing hundreds of backends.
    """
    try:
        text = (
            distribution.read_text("METADATA")
            or distribution.read_text("PKG-INFO")
            or distribution.read_text("")  # an old egg-info file is its own metadata
            or ""
        )
    except UnicodeDecodeError:
        # importlib-metadata reads strictly; a broken file names no one.
        text = ""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            break  # the headers end at the first empty line
        key, colon, value = line.partition(":")
        key = key.lower()
        if colon and key in _IDENTITY_FIELDS and key not in fields:
            fields[key] = value.lstrip(" \t")
    return fields


def _sort_key(entry: BackendEntry) -> tuple[str, str, str]:
    return (entry.distribution.lower(), entry.version, entry.value)


def _qualified_name(constructor: Constructor) -> str:
    module = getattr(constructor, "__module__", None) or "?"
    name = getattr(constructor, "__qualname__", None) or repr(constructor)
    return f"{module}:{name}"
