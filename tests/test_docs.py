"""The documentation: it builds with warnings as errors, and its tables match the code.

The build needs the ``docs`` extra (``pip install -e '.[docs]'``) and is
skipped without it; the table checks need nothing extra.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from bgservice_core import ExitCode
from bgservice_core._cli import main
from tests.distributions import WELL_BEHAVED_MODULE, install_distribution

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

#: Where the variables a user or developer may set are read.
VARIABLE_SOURCES = [
    *ROOT.glob("bgservice_core/**/*.py"),
    *ROOT.glob("plugins/*/bgservice_*/**/*.py"),
    *ROOT.glob("benchmarks/**/*.py"),
    *ROOT.glob(".ci/*"),
    ROOT / "tests" / "conftest.py",
]

#: A variable name; a leading underscore marks a shell script's private one.
VARIABLE = re.compile(r"(?<![A-Za-z0-9_])BGSERVICE_[A-Z0-9_]*[A-Z0-9]")


def table_rows(page: Path, after: str = "") -> list[list[str]]:
    """The cells of the Markdown table rows in ``page`` after the text ``after``.

    The header row comes first; the separator row is left out.
    """
    text = page.read_text(encoding="utf-8")
    if after:
        text = text.split(after, 1)[1]
    rows = [
        line
        for line in text.splitlines()
        if line.startswith("| ") and not re.fullmatch(r"[|:\- ]+", line)
    ]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_docs_build_with_warnings_as_errors(tmp_path: Path) -> None:
    """sphinx-build -W -n passes: no broken reference, no missing example."""
    for module in ("sphinx", "myst_parser", "sphinx_click"):
        if os.environ.get("CI"):
            # CI installs the docs extra: a missing module there is a failure.
            importlib.import_module(module)
        pytest.importorskip(module, reason="install the docs extra: .[docs]")

    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-n",
            "-E",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    errors = (tmp_path / "html" / "reference" / "errors.html").read_text()
    assert "available backends: credit-gate, heartbeat" in errors


def test_every_exit_code_is_documented() -> None:
    """The exit-code table lists exactly the members of ExitCode."""
    rows = table_rows(DOCS / "reference" / "exit-codes.md")[1:]

    documented = {(int(row[0]), row[1].strip("`")) for row in rows}

    assert documented == {(code.value, code.name) for code in ExitCode}


def test_every_environment_variable_is_documented() -> None:
    """Each BGSERVICE_ variable the code reads has a row in the reference."""
    page = (DOCS / "reference" / "environment.md").read_text(encoding="utf-8")
    found: dict[str, Path] = {}
    for source in VARIABLE_SOURCES:
        if source.is_file():
            for variable in VARIABLE.findall(source.read_text(encoding="utf-8")):
                found.setdefault(variable, source)

    missing = {
        variable: str(source.relative_to(ROOT))
        for variable, source in found.items()
        if f"`{variable}`" not in page
    }

    assert "BGSERVICE_BACKGROUND_SERVICES" in found
    assert missing == {}


def test_the_json_fields_of_list_are_documented(site_dir: Path) -> None:
    """bgservice list --json gives exactly the fields the reference promises."""
    install_distribution(
        site_dir,
        "bgservice-documented",
        entry_points={"documented": "documented"},
        modules={"documented.py": WELL_BEHAVED_MODULE},
    )
    rows = table_rows(DOCS / "reference" / "cli.md", after="list --json`")[1:]
    documented = [row[0].strip("`") for row in rows]

    plain = json.loads(CliRunner().invoke(main, ["list", "--json"]).output)
    checked = json.loads(CliRunner().invoke(main, ["list", "--json", "--check"]).output)

    assert {key for row in plain for key in row} == set(documented) - {"status"}
    assert {key for row in checked for key in row} == set(documented)
