"""Command-line polish: shell completion of backend names, examples in --help."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.shell_completion import BashComplete
from click.testing import CliRunner

from bgservice_core._cli import main
from tests.distributions import WELL_BEHAVED_MODULE, install_distribution


@pytest.fixture
def backends(site_dir: Path) -> Path:
    """Install ``cleanup`` and ``credit-gate``, the latter unimportable."""
    install_distribution(
        site_dir,
        "bgservice-cleanup",
        entry_points={"cleanup": "polish_cleanup"},
        modules={"polish_cleanup.py": WELL_BEHAVED_MODULE},
    )
    install_distribution(
        site_dir,
        "bgservice-credit-gate",
        entry_points={"credit-gate": "polish_credit_gate"},
        modules={"polish_credit_gate.py": "raise ImportError('never import me')"},
    )
    return site_dir


def complete(typed: str) -> list[str]:
    """What completing ``bgservice run <typed>`` offers."""
    completion = BashComplete(main, {}, "bgservice", "_BGSERVICE_COMPLETE")
    return [item.value for item in completion.get_completions(["run"], typed)]


@pytest.mark.usefixtures("backends")
@pytest.mark.parametrize(
    ("typed", "offered"),
    [
        ("c", ["cleanup", "credit-gate"]),
        ("cr", ["credit-gate"]),
        ("heartbeat,c", ["heartbeat,cleanup", "heartbeat,credit-gate"]),
        ("heartbeat, cl", ["heartbeat, cleanup"]),
        ("cleanup,", ["cleanup,credit-gate", "cleanup,heartbeat"]),
        ("cleanup,heartbeat,cleanup", []),
        ("x", []),
    ],
)
def test_run_completes_the_name_after_the_last_comma(
    typed: str, offered: list[str]
) -> None:
    """Installed names complete the current list entry; listed ones are left out."""
    assert complete(typed) == offered


@pytest.mark.usefixtures("backends")
def test_completion_reads_metadata_only() -> None:
    """Completing imports no backend, not even one that would fail to import."""
    complete("")

    assert "polish_credit_gate" not in sys.modules
    assert "polish_cleanup" not in sys.modules


@pytest.mark.usefixtures("backends")
def test_completion_works_through_the_installed_script() -> None:
    """The shell's protocol, as bash drives it, reaches the completion."""
    script = Path(sys.executable).with_name("bgservice")
    if not script.exists():
        pytest.skip("the bgservice script is not installed next to this Python")
    completed = subprocess.run(
        [str(script)],
        env={
            **os.environ,
            "_BGSERVICE_COMPLETE": "bash_complete",
            "COMP_WORDS": "bgservice run heartbeat,cr",
            "COMP_CWORD": "2",
        },
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.stdout.splitlines() == ["plain,heartbeat,credit-gate"]


def every_command(
    group: click.Group, path: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """The command paths under ``group``, hidden ones included."""
    paths = [path]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            paths += every_command(command, (*path, name))
        else:
            paths.append((*path, name))
    return paths


@pytest.mark.parametrize("path", every_command(main), ids=" ".join)
def test_every_help_has_an_example(path: tuple[str, ...]) -> None:
    """--help of every command shows at least one example command line."""
    result = CliRunner().invoke(main, [*path, "--help"])

    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    assert f"bgservice {' '.join(path)}".rstrip() in result.output.split("Example")[1]


@pytest.mark.parametrize("path", every_command(main), ids=" ".join)
def test_every_help_reads_as_plain_text(path: tuple[str, ...]) -> None:
    """--help shows no reStructuredText markup: click prints docstrings as they are."""
    result = CliRunner().invoke(main, [*path, "--help"])

    assert result.exit_code == 0, result.output
    assert "`" not in result.output
    assert ":class:" not in result.output
    assert ":func:" not in result.output


def every_group(
    group: click.Group, path: tuple[str, ...] = ()
) -> list[tuple[str, ...]]:
    """The paths of ``group`` and of the groups under it."""
    paths = [path]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            paths += every_group(command, (*path, name))
    return paths


@pytest.mark.parametrize("group", every_group(main), ids=" ".join)
def test_command_summaries_are_not_cut_short(group: tuple[str, ...]) -> None:
    """A group's list of commands shows each summary whole, without '...'."""
    result = CliRunner().invoke(main, [*group, "--help"])

    commands = result.output.partition("Commands:\n")[2]
    assert "..." not in commands


def test_group_help_lines_match_each_commands_own_help() -> None:
    """The lines ``bgservice --help`` lists without importing match the commands."""
    from bgservice_core._cli import COMMANDS, main

    context = click.Context(main)
    for name, (_, line) in COMMANDS.items():
        command = main.get_command(context, name)

        assert command is not None, name
        assert command.name == name
        expected = None if command.hidden else command.get_short_help_str(1000)
        assert line == expected, name


def test_group_help_imports_no_command_module() -> None:
    """``bgservice --help`` lists the commands without importing their modules."""
    script = (
        "import sys\n"
        "from bgservice_core._cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "prefix = 'bgservice_core._cli_'\n"
        "loaded = sorted(m for m in sys.modules if m.startswith(prefix))\n"
        "print('LOADED', loaded)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert "LOADED []" in completed.stdout
    assert "run      Run the named backends" in completed.stdout
