"""Entry point of the ``garrison`` command: the Typer app and error translation.

Expected errors (:class:`GarrisonError`) print one sentence on stderr and exit with the code the
error carries; ``GARRISON_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Iterator, MutableMapping
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import typer
from typer.core import TyperGroup

from garrison import __version__
from garrison.cli._examples import EXAMPLES
from garrison.core.errors import GarrisonError, MarkingError

__all__ = ["COMMANDS", "app", "command", "main", "walk"]

#: Each top-level command and group, in the order help lists them, and the module of
#: ``garrison.cli`` that adds it. A command's module is imported only when the command runs
#: (or help lists it), so ``garrison search`` loads neither the API server nor the parsers.
COMMANDS: dict[str, str] = {
    "init": "_workspace",
    "migrate": "_workspace",
    "parse": "_parse",
    "doctor": "_doctor",
    "ingest": "_ingest",
    "run": "_pipeline",
    "lineage": "_pipeline",
    "verify": "_datasets",
    "search": "_search",
    "ask": "_ask",
    "serve": "_api",
    "pipeline": "_pipeline",
    "chunks": "_pipeline",
    "pii": "_pipeline",
    "dedup": "_pipeline",
    "dataset": "_datasets",
    "key": "_datasets",
    "model": "_models",
    "conversations": "_ask",
    "label": "_label",
    "token": "_api",
    "eval": "_eval",
    "docs": "_docs",
    "jobs": "_docs",
    "marking": "_marking",
    "access": "_access",
    "user": "_user",
    "registry": "_registry",
    "audit": "_audit",
    "redteam": "_redteam",
}
#: Modules whose Typer sub-app is added as it is, by name, rather than through ``register``.
_SUB_APPS: dict[str, tuple[str, str]] = {
    "docs": ("_docs", "app"),
    "jobs": ("_docs", "jobs_app"),
    "marking": ("_marking", "app"),
    "access": ("_access", "app"),
    "user": ("_user", "app"),
    "registry": ("_registry", "app"),
    "audit": ("_audit", "app"),
    "redteam": ("_redteam", "app"),
}
_eval_lock = threading.Lock()


def _module(name: str) -> Any:
    return importlib.import_module(f"garrison.cli.{name}")


def _eval_register(root: typer.Typer) -> None:
    eval_module = _module("_eval")
    with _eval_lock:
        # The runs' commands join the eval group once per process, however often it is built.
        if not getattr(eval_module.app, "_garrison_runs", False):
            _module("_eval_runs").register(eval_module.app)
            eval_module.app._garrison_runs = True
    eval_module.register(root)


def _build_module(module: str, polish: Callable[[Any, tuple[str, ...]], None]) -> dict[str, Any]:
    """The top-level commands ``garrison.cli.<module>`` adds, built and polished."""
    sub = typer.Typer(rich_markup_mode=None)
    added = [name for name, (mod, _) in _SUB_APPS.items() if mod == module]
    for name in added:
        sub.add_typer(getattr(_module(module), _SUB_APPS[name][1]), name=name)
    if not added:
        if module == "_eval":
            _eval_register(sub)
        else:
            _module(module).register(sub)
    built = typer.main.get_group(sub)
    out = {}
    for name, cmd in built.commands.items():
        polish(cmd, (name,))
        out[name] = cmd
    return out


class _LazyCommands(MutableMapping[str, Any]):
    """A group's name -> command mapping that imports a command's module on first use.

    Its keys are known without importing anything (:data:`COMMANDS`); iterating over values
    or items builds every command, as help and the docs checks need.
    """

    def __init__(self, given: MutableMapping[str, Any]) -> None:
        self._given = dict(given)
        self._built: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _load(self, name: str) -> Any:
        with self._lock:
            if name not in self._built and name in COMMANDS:
                self._built.update(_build_module(COMMANDS[name], _polish))
            return self._built[name]

    def __getitem__(self, name: str) -> Any:
        if name in self._given:
            return self._given[name]
        if name not in COMMANDS:
            raise KeyError(name)
        return self._load(name)

    def __setitem__(self, name: str, cmd: Any) -> None:
        self._given[name] = cmd

    def __delitem__(self, name: str) -> None:
        del self._given[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (n for n in self._given if n not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS) + sum(1 for n in self._given if n not in COMMANDS)

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS or name in self._given


class _LazyGroup(TyperGroup):
    """The root group: its commands load on demand (see :class:`_LazyCommands`)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _LazyCommands(self.commands)

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)  # the names only: nothing is imported for them


app = typer.Typer(
    name="garrison",
    cls=_LazyGroup,
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
    # The root's own options now; each command is polished as it loads (_LazyCommands).
    for param in built.params:
        _placeholders(param)
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
        from garrison.cli._output import err_console

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
