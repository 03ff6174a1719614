"""Help screens that read the same with every typer the project allows (0.26 and later).

typer 0.27 prints a required argument in braces in the usage line (``run [OPTIONS]
{manifest}``: braces that elsewhere mean "one of"), and typer 0.29 prints ``<bool>`` after
every flag, ``--help`` included, as if it took a value. :func:`use_plain_help` gives every
command and group of an app the classes below, which print the usage line the usual way
(``MANIFEST``; ``[NAME]`` when optional; ``...`` when repeated) and no type after a flag.
The rest is typer's own rendering, whatever its version.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

if TYPE_CHECKING:
    import typer
    from typer._click import Context, Parameter  # typer >= 0.26 carries its own click

__all__ = ["PlainHelpCommand", "PlainHelpGroup", "use_plain_help"]


def _without_flag_types(params: list[Parameter]) -> list[Parameter]:
    """``params``, each flag given an empty metavar: typer shows a metavar in place of the type."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


def _usage_name(argument: TyperArgument) -> str:
    name = argument.metavar or (argument.name or "").upper()
    if not argument.required:
        name = f"[{name}]"
    return f"{name}..." if argument.nargs != 1 else name


class PlainHelpCommand(TyperCommand):
    """A command whose usage line names arguments in capitals and whose flags show no type."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _without_flag_types(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        arguments = (p for p in self.get_params(ctx) if isinstance(p, TyperArgument))
        return pieces + [_usage_name(argument) for argument in arguments]


class PlainHelpGroup(TyperGroup):
    """A group whose flags (``--help``, ``--version``) show no type."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _without_flag_types(super().get_params(ctx))


def use_plain_help(app: typer.Typer) -> None:
    """Make every command and group of ``app``, subgroups included, use the classes above.

    Call it once every command is registered (typer builds the commands when the app runs).
    A command or group given a class of its own (a subclass of typer's) keeps it.
    """
    if not isinstance(app.info.cls, type) or app.info.cls is TyperGroup:  # or a placeholder
        app.info.cls = PlainHelpGroup
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):  # typer records TyperCommand when none is given
            command.cls = PlainHelpCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            use_plain_help(group.typer_instance)
