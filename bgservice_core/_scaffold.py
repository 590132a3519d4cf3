"""``bgservice new``: a backend distribution from the template bundled here.

The template is a working backend: a :class:`~bgservice_core.LoopService` with
one validated setting, its entry point, and tests that run the conformance
check. Every file is rendered before any is written, so a template error leaves
nothing half-made behind.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import re
import string
from collections.abc import Iterator
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath

from bgservice_core._discovery import installed_entries
from bgservice_core._version import __version__

#: Lowercase words of letters and digits, joined by single ``-`` or ``_``.
_BACKEND_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")

#: Longer names would make file names (``test_bgservice_NAME.py``, the folder,
#: the package) that some file systems refuse, and nobody types them anyway.
MAX_NAME_LENGTH = 64

#: Names that are taken: ``nop`` means "no service" in a backend list, and
#: ``core`` would make a second ``bgservice-core``.
_RESERVED = frozenset({"nop", "core"})

#: pytest collects classes whose names start with this as tests.
_PYTEST_CLASS_PREFIX = "Test"

_TEMPLATE_SUFFIX = ".tmpl"
_PACKAGE_PLACEHOLDER = "PACKAGE"


@dataclasses.dataclass(frozen=True)
class BackendNames:
    """The names a new backend's files use, derived from the backend name."""

    backend: str
    distribution: str
    package: str
    class_name: str
    period_variable: str
    core_version: str = __version__

    @classmethod
    def for_backend(cls, name: str) -> BackendNames:
        """Derive the names from backend ``name``.

        :raises ValueError: the name cannot be a backend's.
        """
        check_new_backend_name(name)
        words = re.split(r"[-_]", name)
        snake = "_".join(words)
        return cls(
            backend=name,
            distribution=f"bgservice-{'-'.join(words)}",
            package=f"bgservice_{snake}",
            class_name="".join(word.capitalize() for word in words) + "Service",
            period_variable=f"BGSERVICE_{snake.upper()}_PERIOD",
        )


def check_new_backend_name(name: str) -> None:
    """Reject a name that cannot also name a package, or that is taken."""
    if len(name) > MAX_NAME_LENGTH:
        # Quote only the start: the whole name would bury the message.
        raise ValueError(
            f"invalid backend name {name[:20] + '...'!r}: it is {len(name)} "
            f"characters long; use at most {MAX_NAME_LENGTH}"
        )
    if not _BACKEND_NAME.fullmatch(name):
        raise ValueError(
            f"invalid backend name {name!r}: use lowercase letters and "
            "digits, starting with a letter, with single '-' or '_' between "
            "words, such as 'cleanup' or 'credit-gate'"
        )
    if name in _RESERVED:
        raise ValueError(
            f"invalid backend name {name!r}: it is reserved "
            f"({', '.join(sorted(_RESERVED))} are); choose another"
        )


def default_directory(name: str) -> Path:
    """The folder ``bgservice new NAME`` creates when no directory is given."""
    return Path(BackendNames.for_backend(name).distribution)


def installed_claimants(name: str) -> list[str]:
    """Describe the installed distributions that offer backend ``name``."""
    return [entry.claimant() for entry in installed_entries(name)]


def create_backend(name: str, directory: Path) -> list[Path]:
    """Write a new backend distribution for ``name`` into ``directory``.

    Like ``mkdir`` without ``-p``, only ``directory`` itself is created: a
    missing parent is more likely a typo than a wish for a new tree.

    :returns: the files written, sorted.
    :raises ValueError: the name cannot be a backend's.
    :raises TargetDirectoryError: ``directory`` exists and is not an empty
        folder, or its parent does not exist.
    :raises OSError: the file system refused to create a folder or file.
    """
    names = BackendNames.for_backend(name)
    _check_target(directory)
    files = {directory / relative: content for relative, content in _rendered(names)}

    directory.mkdir(exist_ok=True)
    for path, content in sorted(files.items()):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return sorted(files)


class TargetDirectoryError(Exception):
    """The folder ``bgservice new`` was asked to fill cannot be used."""


def _check_target(directory: Path) -> None:
    if not directory.exists():
        _check_parent(directory)
        return
    if not directory.is_dir():
        raise TargetDirectoryError(
            f"{str(directory)!r} already exists and is not a directory; "
            "choose another place with --directory"
        )
    if any(directory.iterdir()):
        raise TargetDirectoryError(
            f"directory {str(directory)!r} already exists and is not empty; "
            "choose another with --directory, or remove it first"
        )


def _check_parent(directory: Path) -> None:
    parent = directory.absolute().parent
    if not parent.is_dir():
        raise TargetDirectoryError(
            f"cannot create {str(directory)!r}: its parent folder {str(parent)!r} "
            "does not exist; create it first, or choose another place with "
            "--directory"
        )


def _rendered(names: BackendNames) -> Iterator[tuple[Path, str]]:
    placeholders = {
        **dataclasses.asdict(names),
        "pytest_opt_out": _pytest_opt_out(names.class_name),
    }
    for relative, template in _template_files():
        text = template.read_text(encoding="utf-8")
        if relative.suffix == _TEMPLATE_SUFFIX:
            # substitute(), not safe_substitute(): a misspelled placeholder in
            # the template must fail here, not ship in a user's project.
            text = string.Template(text).substitute(placeholders)
            relative = relative.with_suffix("")
        parts = [
            part.replace(_PACKAGE_PLACEHOLDER, names.package) for part in relative.parts
        ]
        yield Path(*parts), text


def _pytest_opt_out(class_name: str) -> str:
    """The lines that keep pytest from collecting the service class, if needed."""
    if not class_name.startswith(_PYTEST_CLASS_PREFIX):
        return ""
    return (
        f"\n    # pytest would take a class named {_PYTEST_CLASS_PREFIX}* in a test "
        "module for tests.\n    __test__ = False\n"
    )


def _template_files() -> Iterator[tuple[PurePosixPath, Traversable]]:
    root = importlib.resources.files("bgservice_core").joinpath("_templates", "backend")
    folders = [(PurePosixPath(), root)]
    while folders:
        relative, folder = folders.pop()
        for child in folder.iterdir():
            if child.is_dir():
                folders.append((relative / child.name, child))
            elif child.name != "__pycache__":
                yield relative / child.name, child
