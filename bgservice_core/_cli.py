"""The ``bgservice`` command: list backends, manage tenants, run the chassis.

Each command lives in a module of its own, imported only when that command
runs: ``bgservice --help`` then costs little more than importing click.
"""

from __future__ import annotations

import importlib

import click

from bgservice_core._version import __version__

#: Each command's ``module:attribute`` and the one line ``bgservice --help``
#: shows for it (None for a hidden command). The lines are kept here so that
#: listing the commands imports none of them; a test checks that each matches
#: the command's own help.
COMMANDS: dict[str, tuple[str, str | None]] = {
    "check-one": ("bgservice_core._cli_list:check_one", None),
    "list": (
        "bgservice_core._cli_list:list_command",
        "List the installed backends, reading metadata only.",
    ),
    "new": (
        "bgservice_core._cli_new:new_command",
        "Create a backend distribution, ready to install and run.",
    ),
    "run": (
        "bgservice_core._cli_run:run_command",
        "Run the named backends until SIGINT or SIGTERM, then drain them.",
    ),
    "tenants": (
        "bgservice_core._cli_tenants:tenants_group",
        "Show the tenants' admission state (the reference chassis' Gate).",
    ),
}


class _LazyGroup(click.Group):
    """A group whose commands are imported when they are used, not listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, _, attribute = COMMANDS[cmd_name][0].partition(":")
        command: click.Command = getattr(
            importlib.import_module(module_name), attribute
        )
        return command

    def format_commands(
        self, ctx: click.Context, formatter: click.HelpFormatter
    ) -> None:
        rows = [(name, line) for name, (_, line) in COMMANDS.items() if line]
        with formatter.section("Commands"):
            formatter.write_dl(sorted(rows))


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="bgservice")
def main() -> None:
    """Run background services from installed backend distributions.

    \b
    Examples:
      bgservice list
      bgservice tenants add acme
      bgservice run heartbeat
      bgservice new cleanup
    """


if __name__ == "__main__":
    main()
