"""Entry point of the ``garrison`` command: the Typer app and error translation.

Expected errors (:class:`GarrisonError`) print one sentence on stderr and exit with the code the
error carries; ``GARRISON_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

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
from garrison.cli._output import err_console
from garrison.core.errors import GarrisonError, MarkingError

__all__ = ["app", "main"]

app = typer.Typer(
    name="garrison",
    help="Turn marked, siloed data into AI-ready data -- air-gapped, with every read enforced.",
    no_args_is_help=True,
    add_completion=False,
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


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns (and, as a script, exits with) the exit code.

    Typer reports usage errors itself (exit 2, with the usage line); Garrison's own errors are
    translated here into one sentence on stderr and the exit code the error carries.
    """
    # What Garrison writes is marked data or keys: owner-only, whatever the shell's umask.
    os.umask(os.umask(0o077) | 0o077)
    try:
        app(args=argv, prog_name="garrison")
    except GarrisonError as exc:
        if os.environ.get("GARRISON_DEBUG") == "1":
            raise
        message = exc.message
        if isinstance(exc, MarkingError):
            message = f"{message} (rule: {exc.rule})"
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
