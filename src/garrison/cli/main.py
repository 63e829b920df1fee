"""Entry point of the ``garrison`` command: the Typer app and error translation.

Expected errors (:class:`GarrisonError`) print one sentence on stderr and exit with the code the
error carries; ``GARRISON_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import typer

from garrison import __version__
from garrison.cli import (
    _access,
    _api,
    _ask,
    _audit,
    _datasets,
    _docs,
    _doctor,
    _eval,
    _eval_runs,
    _ingest,
    _label,
    _marking,
    _models,
    _parse,
    _pipeline,
    _redteam,
    _registry,
    _search,
    _user,
    _workspace,
)
from garrison.cli._examples import EXAMPLES
from garrison.cli._output import err_console
from garrison.core.errors import GarrisonError, MarkingError

__all__ = ["app", "command", "main", "walk"]

app = typer.Typer(
    name="garrison",
    help="Turn marked, siloed data into AI-ready data -- air-gapped, with every read enforced.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"garrison {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    workspace: Annotated[
        str | None,
        typer.Option(
            "-w",
            "--workspace",
            envvar="GARRISON_WORKSPACE",
            help="Workspace directory (default: $GARRISON_WORKSPACE).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Garrison command line. Exit codes: 0 done, 1 check failed, 2 invalid input,
    3 not found, 4 not permitted, 5 environment problem."""
    ctx.obj = {"workspace": workspace}


_workspace.register(app)
_parse.register(app)
_doctor.register(app)
_ingest.register(app)
_pipeline.register(app)
_datasets.register(app)
_models.register(app)
_search.register(app)
_ask.register(app)
_label.register(app)
_api.register(app)
_eval.register(app)
_eval_runs.register(_eval.app)
app.add_typer(_docs.app, name="docs")
app.add_typer(_docs.jobs_app, name="jobs")
app.add_typer(_marking.app, name="marking")
app.add_typer(_access.app, name="access")
app.add_typer(_user.app, name="user")
app.add_typer(_registry.app, name="registry")
app.add_typer(_audit.app, name="audit")
app.add_typer(_redteam.app, name="redteam")


def walk(node: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command under ``node`` (a Click group) with its path, groups left out."""
    subcommands = getattr(node, "commands", None)
    if subcommands is None:
        return [(path, node)]
    out: list[tuple[tuple[str, ...], Any]] = []
    for name, sub in subcommands.items():
        out.extend(walk(sub, (*path, name)))
    return out


_PLACEHOLDERS: dict[Any, str] = {
    str: "TEXT",
    int: "INTEGER",
    float: "FLOAT",
    bool: "BOOLEAN",
    datetime: "DATETIME",
}


def _placeholder(annotation: Any, is_path: bool) -> str:
    """The ordinary placeholder of a value of type ``annotation``: TEXT, INTEGER, PATH..."""
    if is_path or annotation is Path:
        return "PATH"
    origin = get_origin(annotation)
    if origin in (list, tuple, set):
        parts = [a for a in get_args(annotation) if a is not Ellipsis]
        return " ".join(_placeholder(a, False) for a in parts) or "TEXT"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return "[" + "|".join(str(m.value) for m in annotation) + "]"
    args = [a for a in get_args(annotation) if a is not type(None)]
    if len(args) == 1:
        return _placeholder(args[0], False)
    return _PLACEHOLDERS.get(annotation, "VALUE")


def _polish(node: Any, path: tuple[str, ...] = ()) -> None:
    """Ordinary placeholders in help (``PATH``, ``INTEGER``, ``TEXT``; arguments by name) and
    the example line of each command (:mod:`garrison.cli._examples`) as its epilog."""
    for param in node.params:
        _placeholders(param)
    subcommands = getattr(node, "commands", None)
    if subcommands is None:
        example = EXAMPLES.get(" ".join(path))
        if example:
            node.epilog = f"\b\nExample:\n  {example}"
        return
    for name, sub in subcommands.items():
        _polish(sub, (*path, name))


def _placeholders(param: Any) -> None:
    if param.metavar is not None or getattr(param, "is_flag", False):
        return
    if param.param_type_name == "argument":
        param.metavar = param.name.upper()
        # The name says what goes there; typer would add "<type>" after it.
        setattr(param, "display_type_rich", lambda ctx: None)  # noqa: B010
        usage = param.metavar + ("..." if param.nargs != 1 else "")
        usage = usage if param.required else f"[{usage}]"
        setattr(param, "_usage_display_name", lambda: usage)  # noqa: B010
        return
    descriptor = getattr(param, "type_descriptor", None)
    if descriptor is None:
        return
    choices = getattr(descriptor, "choices", None)
    if choices:
        values = (c.value if isinstance(c, Enum) else c for c in choices)
        param.metavar = "[" + "|".join(str(v) for v in values) + "]"
    else:
        param.metavar = _placeholder(descriptor.annotation, bool(descriptor.is_path))


def command() -> Any:
    """The ``garrison`` Click command: the Typer app with placeholders and examples in help."""
    built = typer.main.get_command(app)
    _polish(built)
    return built


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns (and, as a script, exits with) the exit code.

    Typer reports usage errors itself (exit 2, with the usage line); Garrison's own errors are
    translated here into one sentence on stderr and the exit code the error carries.
    """
    # What Garrison writes is marked data or keys: owner-only, whatever the shell's umask.
    os.umask(os.umask(0o077) | 0o077)
    try:
        command()(args=argv, prog_name="garrison")
    except GarrisonError as exc:
        if os.environ.get("GARRISON_DEBUG") == "1":
            raise
        message = exc.message
        if isinstance(exc, MarkingError):
            from garrison.cli._suggest import with_suggestion

            message = f"{with_suggestion(exc)} (rule: {exc.rule})"
        err_console.print(f"garrison: {message}", markup=False)
        return _exit(exc.exit_code, argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return _exit(code, argv)
    return _exit(0, argv)


def _exit(code: int, argv: list[str] | None) -> int:
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":  # pragma: no cover
    main()
