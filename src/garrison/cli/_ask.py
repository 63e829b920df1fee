"""``garrison ask`` and ``garrison conversations``: the assistant from the command line."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._output import emit_json, emit_table, out_console

__all__ = ["register"]

conversations_app = typer.Typer(
    help="Your conversations with the assistant: list, show, delete.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add ``ask`` and ``conversations`` to the top-level app."""
    app.command("ask")(ask_command)
    app.add_typer(conversations_app, name="conversations")


def ask_command(
    ctx: typer.Context,
    question: Annotated[
        str, typer.Argument(help="The question, in plain words (may start with a portion mark).")
    ],
    k: Annotated[
        int, typer.Option("--k", "-k", min=1, max=50, help="How many chunks to consider.")
    ] = 8,
    max_marking: Annotated[
        str | None,
        typer.Option("--max-marking", help="Ceiling for the answer's marking (retrieve under it)."),
    ] = None,
    question_marking: Annotated[
        str | None,
        typer.Option("--question-marking", help="The marking of the question (default U)."),
    ] = None,
    conversation: Annotated[
        str | None,
        typer.Option("--conversation", help="Continue conversation ID, or 'new' to start one."),
    ] = None,
    generator: Annotated[
        str | None,
        typer.Option(
            "--generator", help="A registered generator, NAME[@VERSION] (default: extractive)."
        ),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask a question; the answer comes from what you may read, cited and marked."""
    from garrison.assist import ask

    with open_session(ctx, workspace, as_user) as session:
        answer = ask(
            session,
            question,
            k=k,
            max_marking=max_marking,
            question_marking=question_marking,
            conversation=conversation,
            generator=generator,
        )
    if as_json:
        emit_json(answer.to_dict())
        return
    out_console.print(answer.marking, markup=False)
    out_console.print("", markup=False)
    out_console.print(answer.text, markup=False)
    if answer.citations:
        out_console.print("", markup=False)
        for c in answer.citations:
            where = _where(c.to_dict())
            out_console.print(f"[{c.n}] {c.portion} \u201c{c.quote}\u201d {where}", markup=False)
    if answer.conversation_id:
        out_console.print(f"\nConversation {answer.conversation_id}.", markup=False)
    out_console.print("", markup=False)
    out_console.print(answer.marking, markup=False)


def _where(citation: dict[str, Any]) -> str:
    parts = [f"chunk {citation['chunk_id']}"]
    if citation.get("doc_id"):
        parts.append(f"doc {str(citation['doc_id'])[:16]}")
    for key, value in sorted(citation.get("locator", {}).items()):
        parts.append(f"{key} {value}")
    return "(" + ", ".join(parts) + ")"


@conversations_app.command("ls")
def conversations_ls(
    ctx: typer.Context,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List your conversations (those you may still read), most recent first."""
    from garrison.assist import Conversations

    with open_session(ctx, workspace, as_user) as session:
        found = Conversations(session).list()
    if as_json:
        emit_json(found)
        return
    emit_table(
        ["id", "marking", "turns", "updated", "first question"],
        [
            (c["id"], c["marking"], c["turns"], c["updated_at"], c["first_question"][:60])
            for c in found
        ],
    )


@conversations_app.command("show")
def conversations_show(
    ctx: typer.Context,
    conversation_id: Annotated[str, typer.Argument(help="The conversation id.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one of your conversations, turn by turn."""
    from garrison.assist import Conversations

    with open_session(ctx, workspace, as_user) as session:
        found = Conversations(session).get(conversation_id)
    if as_json:
        emit_json(found.to_dict())
        return
    banner = found.marking.banner()
    out_console.print(banner, markup=False)
    for turn in found.turns:
        out_console.print(f"\n{turn['question_marking']} asked: {turn['question']}", markup=False)
        out_console.print(str(turn["answer"].get("answer", "")), markup=False)
    out_console.print(f"\n{banner}", markup=False)


@conversations_app.command("rm")
def conversations_rm(
    ctx: typer.Context,
    conversation_id: Annotated[str, typer.Argument(help="The conversation id.")],
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
) -> None:
    """Delete one of your conversations (audited)."""
    from garrison.assist import Conversations

    with open_session(ctx, workspace, as_user) as session:
        Conversations(session).delete(conversation_id)
    out_console.print(f"Deleted conversation {conversation_id}.", markup=False)
