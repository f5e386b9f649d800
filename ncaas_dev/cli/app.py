"""``ncaas-dev``: a thin command line over the library.

Each command builds its own clients (see ``context``), calls the library and renders the
result; errors are translated once, in ``main``. The commands live by concern: ``project``
(init, build), ``stack`` (up, down, status, dispatch), ``jobs`` (run, submit, jobs, logs,
results), ``bake``, ``deploy`` and ``doctor``.

Start-up is part of the interface (`--help` and `status` are run all day): importing this
module costs Typer and Click only. Rich, pydantic, boto3 and docker are imported inside the
commands that use them (a unit test guards this), and help is Click's plain text, since
Typer's Rich help alone costs more than the whole `--help` may.
"""

from __future__ import annotations

import sys
from functools import cache
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from ..errors import NcaasError
from ..web import cli as web_cli  # `ncaas-dev web` (issue 8)
from . import bake, cancel, deploy, doctor, importing, jobs, measure, project, stack
from .common import console, err, escape, piped, strip_ansi


def _pass_through(params: Any) -> None:
    """Typer (0.2x) coerces parameters through pydantic TypeAdapters, built when a command runs
    even for a value left unset (its own --help, say); importing pydantic for that costs about
    0.1 s, a third of `status`'s budget. Click already hands ``str`` and ``bool`` parameters
    over as ``str``/``bool`` (or None), so those pass through, as Typer does for types it cannot
    adapt. Should Typer's internals change, nothing is replaced and Typer coerces as usual."""
    try:
        from typer._coercion import PassThroughRuntimeParam

        for param in params:
            described = param.type_descriptor
            kind = described.annotation
            if kind in (str, bool) and described.parameter_info.parser is None:
                param._runtime_param = PassThroughRuntimeParam(
                    parameter_info=described.parameter_info, annotation=kind
                )
    except (ImportError, AttributeError, TypeError):
        pass


class _Group(TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        _pass_through(self.get_params(ctx))
        return super().parse_args(ctx, args)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _pass_through(command.get_params(ctx))
        return command


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="Turn a research analysis into a cloud service: run it locally exactly as in the cloud.",
)
state: dict[str, bool] = {"debug": False}


def _print_version(value: bool) -> None:
    if value:
        from .. import __version__

        console.print(__version__)
        raise typer.Exit(0)


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version."
        ),
    ] = False,
) -> None:
    state["debug"] = debug


# In the order `--help` lists them.
for _command in (
    project.init,
    project.build,
    stack.up,
    stack.down,
    stack.status,
    stack.dispatch,
    jobs.run,
    jobs.submit,
    jobs.jobs,
    jobs.logs,
    jobs.results,
):
    app.command()(_command)
for _register in (
    cancel.register,
    bake.register,
    deploy.register,
    doctor.register,
    importing.register,
    measure.register,
    web_cli.register,
):
    _register(app)


@cache
def click_command() -> Any:
    """The Click command behind ``app``. Typer builds it anew on every ``app()``, tens of
    milliseconds; built once, the command server builds it before it forks a command."""
    return typer.main.get_command(app)


def main() -> None:
    """Entry point: the one place errors become a line of text and an exit code.

    Typer's standalone mode already answers bad usage with exit 2; our errors pass through.
    """
    try:
        click_command()()
    except NcaasError as e:
        if state["debug"]:
            raise
        # soft_wrap: the reason stays one line whatever the terminal's width (scripts grep it);
        # a pipe gets no escape codes, not even those in a build's output quoted by the hint.
        message, hint = e.message, e.hint
        if piped(to_err=True):
            message, hint = strip_ansi(message), hint and strip_ansi(hint)
        err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
        if hint:
            err.print(f"[dim]hint: {escape(hint)}[/dim]", soft_wrap=True)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
