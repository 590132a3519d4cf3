"""Installed environments of realistic shape, written as an installer writes them.

An environment is one site directory holding M backend distributions, each
advertising one backend in ``bgservice.backends``, among N unrelated
distributions, a quarter of which advertise entry points in other groups. Every
distribution is left the way pip leaves a wheel it installed: a dist-info folder
with METADATA, WHEEL, INSTALLER, RECORD (sha256 and size of every file) and,
when it has any, entry_points.txt; its package; and the package's bytecode,
which RECORD lists without a hash, as pip does.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib.util
import py_compile
import random
import time
from collections.abc import Mapping
from pathlib import Path

from bgservice_core._discovery_cache import SETTLE_SECONDS

BACKEND_GROUP = "bgservice.backends"

#: Groups that unrelated distributions advertise entry points in.
OTHER_GROUPS = (
    "console_scripts",
    "pytest11",
    "sphinx.builders",
    "flake8.extension",
    "babel.extractors",
)

#: The share of unrelated distributions that advertise entry points.
UNRELATED_WITH_ENTRY_POINTS = 0.25

BACKEND_SOURCE = '''\
"""Benchmark backend {index}: a service that does nothing, politely."""

from bgservice_core import hookimpl


class IdleService:
    def __init__(self, config):
        self.config = config

    def start(self):
        pass

    def stop(self):
        pass


@hookimpl
def bgservice_build_service(config):
    return IdleService(config)
'''

UNRELATED_SOURCE = '''\
"""{summary}"""

__version__ = "{version}"


def main():
    print("{name} {version}")
'''

_WORD_LIST = (
    "async adapter atlas beacon binder cache canvas cipher cobalt comet crisp "
    "delta ember falcon fathom ferry flux forge glacier harbor helix hollow "
    "iris jargon kernel lantern ledger lumen maple matrix meadow nimbus nova "
    "orbit parcel pebble pilot prism quartz quill raven relay ripple saffron "
    "sable signal sprout summit tandem thistle timber tundra vector velvet "
    "willow yarrow zephyr"
)
_WORDS = _WORD_LIST.split()


@dataclasses.dataclass(frozen=True)
class Shape:
    """How many backend and unrelated distributions an environment holds."""

    backends: int
    unrelated: int

    @property
    def label(self) -> str:
        return f"{self.backends} backends among {self.unrelated} others"

    @property
    def folder_name(self) -> str:
        return f"site-{self.backends}-among-{self.unrelated}"


@dataclasses.dataclass(frozen=True)
class Distribution:
    """One distribution to install: its identity, its package and entry points."""

    name: str
    version: str
    package: str
    source: str
    metadata: str
    entry_points: Mapping[str, Mapping[str, str]]
    requested: bool = False

    @property
    def dist_info(self) -> str:
        return f"{self.name.replace('-', '_')}-{self.version}.dist-info"


@dataclasses.dataclass(frozen=True)
class Environment:
    """A generated site directory and the backends it offers."""

    site: Path
    shape: Shape
    backend_names: tuple[str, ...]

    @property
    def selected(self) -> str:
        """The backend the ``open`` cases name: the middle one."""
        return self.backend_names[len(self.backend_names) // 2]


def backend_name(index: int) -> str:
    """Return the entry-point name of benchmark backend ``index``."""
    return f"bench-{index:04d}"


def backend_package(index: int) -> str:
    """Return the import name of benchmark backend ``index``'s package."""
    return f"bgservice_bench_{index:04d}"


def generate(site: Path, shape: Shape, seed: int = 6) -> Environment:
    """Install the distributions of ``shape`` into the empty folder ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    chooser = random.Random(seed)
    distributions = [backend_distribution(i, chooser) for i in range(shape.backends)]
    distributions += [
        unrelated_distribution(i, chooser) for i in range(shape.unrelated)
    ]

    for distribution in distributions:
        install(site, distribution)
    names = tuple(backend_name(i) for i in range(shape.backends))
    return Environment(site=site, shape=shape, backend_names=names)


def wait_until_settled(site: Path) -> None:
    """Wait until the metadata in ``site`` is old enough for bgservice to cache.

    bgservice caches discovery only once nothing it read from has changed for a
    few seconds, so a freshly generated environment is measured after that.
    """
    paths = [site, *site.glob("*.dist-info"), *site.glob("*.dist-info/*")]
    newest = max(max(path.stat().st_mtime, path.stat().st_ctime) for path in paths)
    delay = newest + SETTLE_SECONDS + 0.1 - time.time()
    if delay > 0:
        time.sleep(delay)


def backend_distribution(index: int, chooser: random.Random) -> Distribution:
    """Describe benchmark backend ``index`` as a distribution."""
    name = f"bgservice-bench-{index:04d}"
    version = _version(chooser)
    package = backend_package(index)
    summary = f"A benchmark backend for bgservice, number {index}"
    return Distribution(
        name=name,
        version=version,
        package=package,
        source=BACKEND_SOURCE.format(index=index),
        metadata=_metadata(name, version, summary, ["bgservice-core>=0.1"], chooser),
        entry_points={BACKEND_GROUP: {backend_name(index): package}},
        requested=True,
    )


def unrelated_distribution(index: int, chooser: random.Random) -> Distribution:
    """Describe an unrelated distribution, some with entry points elsewhere."""
    words = chooser.sample(_WORDS, 2)
    name = f"{words[0]}-{words[1]}-{index:04d}"
    version = _version(chooser)
    package = name.replace("-", "_")
    summary = f"Utilities for {words[0]} and {words[1]} handling"
    requirements = [f"{word}-lib>=1.{chooser.randrange(9)}" for word in words]
    return Distribution(
        name=name,
        version=version,
        package=package,
        source=UNRELATED_SOURCE.format(summary=summary, version=version, name=name),
        metadata=_metadata(name, version, summary, requirements, chooser),
        entry_points=_other_entry_points(name, package, chooser),
    )


def install(site: Path, distribution: Distribution) -> Path:
    """Write ``distribution`` into ``site`` as pip would; return its dist-info."""
    hashed = {**_package_files(distribution), **_dist_info_files(distribution)}
    for relative, content in hashed.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)

    compiled = [
        _compile(site, relative) for relative in hashed if relative.endswith(".py")
    ]
    record = f"{distribution.dist_info}/RECORD"
    (site / record).write_text(_record(hashed, [*compiled, record]))
    return site / distribution.dist_info


def _package_files(distribution: Distribution) -> dict[str, bytes]:
    package = distribution.package
    return {
        f"{package}/__init__.py": distribution.source.encode(),
        f"{package}/py.typed": b"",
    }


def _dist_info_files(distribution: Distribution) -> dict[str, bytes]:
    folder = distribution.dist_info
    files = {
        f"{folder}/METADATA": distribution.metadata.encode(),
        f"{folder}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: bgservice-benchmarks\n"
            b"Root-Is-Purelib: true\nTag: py3-none-any\n"
        ),
        f"{folder}/INSTALLER": b"pip\n",
    }
    if distribution.requested:
        files[f"{folder}/REQUESTED"] = b""
    if distribution.entry_points:
        text = _entry_points_text(distribution.entry_points)
        files[f"{folder}/entry_points.txt"] = text.encode()
    return files


def _compile(site: Path, relative: str) -> str:
    """Compile one module as pip does after installing; return the pyc's path."""
    source = site / relative
    compiled = Path(importlib.util.cache_from_source(str(source)))
    py_compile.compile(str(source), cfile=str(compiled), doraise=True)
    return compiled.relative_to(site).as_posix()


def _record(hashed: Mapping[str, bytes], unhashed: list[str]) -> str:
    rows = [
        f"{path},sha256={_digest(content)},{len(content)}"
        for path, content in hashed.items()
    ]
    rows += [f"{path},," for path in unhashed]
    return "\n".join(sorted(rows)) + "\n"


def _digest(content: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest())
    return digest.rstrip(b"=").decode()


def _entry_points_text(groups: Mapping[str, Mapping[str, str]]) -> str:
    sections = []
    for group, entries in groups.items():
        lines = [
            f"[{group}]",
            *(f"{name} = {value}" for name, value in entries.items()),
        ]
        sections.append("\n".join(lines) + "\n")
    return "\n".join(sections)


def _other_entry_points(
    name: str, package: str, chooser: random.Random
) -> dict[str, dict[str, str]]:
    if chooser.random() >= UNRELATED_WITH_ENTRY_POINTS:
        return {}
    groups = chooser.sample(OTHER_GROUPS, chooser.randint(1, 2))
    return {group: {name: f"{package}:main"} for group in groups}


def _metadata(
    name: str,
    version: str,
    summary: str,
    requirements: list[str],
    chooser: random.Random,
) -> str:
    # Real METADATA files carry the README as their body, a few kilobytes long;
    # whoever parses one pays for all of it.
    headers = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {summary}",
        f"Author-email: The {name} developers <dev@{name}.example>",
        "License: MIT",
        "Classifier: Programming Language :: Python :: 3",
        "Classifier: License :: OSI Approved :: MIT License",
        "Requires-Python: >=3.11",
        *(f"Requires-Dist: {requirement}" for requirement in requirements),
        "Description-Content-Type: text/markdown",
    ]
    return "\n".join(headers) + "\n\n" + _readme(name, summary, chooser)


def _readme(name: str, summary: str, chooser: random.Random) -> str:
    paragraphs = [f"# {name}\n\n{summary}."]
    for _ in range(chooser.randint(4, 12)):
        words = chooser.choices(_WORDS, k=chooser.randint(40, 80))
        paragraphs.append(" ".join(words).capitalize() + ".")
    return "\n\n".join(paragraphs) + "\n"


def _version(chooser: random.Random) -> str:
    return f"{chooser.randint(0, 9)}.{chooser.randint(0, 30)}.{chooser.randint(0, 9)}"
