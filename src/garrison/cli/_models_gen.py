"""``garrison model add-endpoint | add-local | generate``: generators."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from garrison.cli._common import AsOpt, JsonOpt, WorkspaceOpt, open_session
from garrison.cli._models import RefArg, app
from garrison.cli._output import emit_json, out_console

MarkingOpt = Annotated[
    str,
    typer.Option(
        "--marking", help="What the model's weights are marked (joined into its outputs)."
    ),
]


def _registered(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(data)
        return
    params = data["manifest"]["parameters"]
    accredited = params.get("accredited", "system high")
    out_console.print(
        f"Registered generator {data['name']}@{data['id'][:12]} v{data['version']} "
        f"[{data['marking']}], accredited for {accredited}.",
        markup=False,
    )


@app.command("add-endpoint")
def add_endpoint(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The generator's name.")],
    base_url: Annotated[
        str, typer.Option("--base-url", help="The server's OpenAI API root, e.g. http://h:8000/v1.")
    ],
    model: Annotated[str, typer.Option("--model", help="The model id the server serves.")],
    accredited: Annotated[
        str,
        typer.Option(
            "--accredited", help="The most the endpoint may receive (never above system high)."
        ),
    ],
    marking: MarkingOpt = "UNCLASSIFIED",
    api_key_file: Annotated[
        Path | None,
        typer.Option("--api-key-file", help="An owner-only file holding the API key."),
    ] = None,
    no_probe: Annotated[
        bool, typer.Option("--no-probe", help="Register without checking that it answers.")
    ] = False,
    context_tokens: Annotated[
        int | None,
        typer.Option("--context-tokens", help="The endpoint's context size (default 4096)."),
    ] = None,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register an OpenAI-compatible endpoint as a generator (admins; audited)."""
    from garrison.models import register_endpoint

    with open_session(ctx, workspace, as_user) as session:
        version = register_endpoint(
            session,
            name,
            base_url=base_url,
            model=model,
            accredited=session.parse_marking(accredited),
            marking=session.parse_marking(marking),
            api_key_file=api_key_file,
            probe=not no_probe,
            context_tokens=context_tokens,
        )
        data = version.to_dict()
    _registered(data, as_json)


@app.command("add-local")
def add_local(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The generator's name.")],
    path: Annotated[
        Path, typer.Option("--path", help="A Hugging Face causal-LM directory (safetensors).")
    ],
    marking: MarkingOpt = "UNCLASSIFIED",
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register a local language model directory as a generator (admins; audited)."""
    from garrison.models import register_local

    with open_session(ctx, workspace, as_user) as session:
        version = register_local(session, name, path=path, marking=session.parse_marking(marking))
        data = version.to_dict()
    _registered(data, as_json)


@app.command("generate")
def generate(
    ctx: typer.Context,
    ref: RefArg,
    prompt: Annotated[str, typer.Option("--prompt", help="The user message.")],
    marking: Annotated[
        str | None,
        typer.Option("--marking", help="The prompt's marking (default: system high)."),
    ] = None,
    system: Annotated[
        str | None, typer.Option("--system", help="A system message before the prompt.")
    ] = None,
    max_tokens: Annotated[
        int, typer.Option("--max-tokens", min=1, help="At most this many new tokens.")
    ] = 256,
    temperature: Annotated[
        float, typer.Option("--temperature", min=0.0, max=2.0, help="0 decodes greedily.")
    ] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed.")] = 0,
    timeout: Annotated[
        float, typer.Option("--timeout", min=1.0, help="Seconds an endpoint may take.")
    ] = 120.0,
    stream: Annotated[bool, typer.Option("--stream", help="Print the text as it comes.")] = False,
    workspace: WorkspaceOpt = None,
    as_user: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate a reply to a prompt; refused when the prompt's marking is above the
    generator's accreditation (nothing is sent)."""
    from garrison.models import open_generator

    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    with open_session(ctx, workspace, as_user) as session:
        content = (
            session.parse_marking(marking) if marking is not None else session.workspace.system_high
        )
        generator = open_generator(session, ref, timeout=timeout)
        options: dict[str, Any] = {
            "content_marking": content,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
        }
        if stream and not as_json:
            pieces = generator.stream(messages, **options)
            out_console.print(pieces.marking.banner(), markup=False)
            for piece in pieces:
                sys.stdout.write(piece)
                sys.stdout.flush()
            sys.stdout.write("\n")
            out_console.print(pieces.marking.banner(), markup=False)
            return
        result = generator.generate(messages, **options)
    if as_json:
        emit_json(result.to_dict())
        return
    banner = result.marking.banner()
    out_console.print(banner, markup=False)
    out_console.print(result.text, markup=False)
    out_console.print(banner, markup=False)
