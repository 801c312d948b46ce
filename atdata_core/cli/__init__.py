"""The ``atdata`` command.

Each sub-command lives in its own module here; plugins add theirs through the
``atdata_cli_commands`` hook. Failures print one clear line to stderr and exit
non-zero (1 for an error of the data or a service, 2 for a usage error).
Text that records carry (names, descriptions, URIs, error messages quoting
them) is printed through :func:`atdata_core.cli._terminal.safe_text`, which
shows terminal control characters as escapes.
"""

from __future__ import annotations

import sys

import click

from atdata_core import __version__


class _Group(click.Group):
    """Loads sub-commands lazily so ``atdata --help`` stays fast, and turns errors into exit codes."""

    _builtin = {
        "plugins": ("atdata_core.cli._plugins", "plugins"),
        "inspect": ("atdata_core.cli._shards", "inspect"),
        "cache": ("atdata_core.cli._shards", "cache"),
        "preview": ("atdata_core.cli._shards", "preview"),
        "sandbox": ("atdata_core.sandbox.cli", "sandbox"),
        "login": ("atdata_core.cli._federation", "login"),
        "logout": ("atdata_core.cli._federation", "logout"),
        "publish": ("atdata_core.cli._federation", "publish"),
        "list": ("atdata_core.cli._federation", "list_cmd"),
        "schema": ("atdata_core.cli._federation", "schema"),
        "load": ("atdata_core.cli._federation", "load_cmd"),
        "codegen": ("atdata_core.cli._codegen", "codegen_cmd"),
        "lens": ("atdata_core.cli._lens", "lens_group"),
        "demo": ("atdata_core.cli._demo", "demo"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = set(self._builtin) | set(self.commands)
        names |= {cmd.name for cmd in _plugin_commands() if cmd.name}
        return sorted(names)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        if name in self._builtin:
            import importlib

            module, attr = self._builtin[name]
            return getattr(importlib.import_module(module), attr)
        for cmd in _plugin_commands():
            if cmd.name == name:
                return cmd
        return None

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        from atdata_core.cli._terminal import safe_text
        from atdata_core.errors import AtdataError

        try:
            return super().invoke(ctx)
        except AtdataError as err:
            # Messages quote record text (names, URLs, paths): escaped like every record text printed.
            click.secho(f"error: {safe_text(err, keep_newlines=True)}", fg="red", err=True)
            sys.exit(1)


_cached_plugin_commands: list[click.Command] | None = None


def _plugin_commands() -> list[click.Command]:
    global _cached_plugin_commands
    if _cached_plugin_commands is None:
        try:
            from atdata_core.plugins import cli_commands

            _cached_plugin_commands = [c for c in cli_commands() if isinstance(c, click.Command)]
        except Exception as err:  # the CLI must work even when plugin discovery fails
            click.secho(f"warning: plugin commands unavailable: {err}", fg="yellow", err=True)
            _cached_plugin_commands = []
    return _cached_plugin_commands


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="atdata")
def cli() -> None:
    """Publish, find and load typed ML datasets on the AT Protocol."""


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``atdata`` console script."""
    cli.main(args=argv, prog_name="atdata")


__all__ = ["cli", "main"]
