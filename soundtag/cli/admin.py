"""Administration: ``fetch-model`` (into the Hugging Face cache) and ``db upgrade`` (the schema)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from soundtag.cli.options import Database, console, fail
from soundtag.errors import first_line
from soundtag.settings import load_settings

db_app = typer.Typer(no_args_is_help=True, help="Database schema.")


def fetch_model(
    model: Annotated[Optional[str], typer.Argument(help="Hub id or local folder [SOUNDTAG_MODEL].")] = None,
    export: Annotated[bool, typer.Option("--export", help="Also export its towers to ONNX (the CPU backend) "
                                         "[SOUNDTAG_EXPORT_DIR].")] = False,
    dtype: Annotated[Optional[str], typer.Option(help="With --export: fp32, int8 (adds the quantized towers) or bf16; "
                                               "where OpenVINO is installed, also compiled by it at that dtype.")] = None,
    random: Annotated[Optional[Path], typer.Option(
        "--random", help="Instead, save a small randomly initialised CLAP in this folder: the real code path "
        "offline, labels that mean nothing.")] = None,
) -> None:
    """Download a model into the Hugging Face cache (HF_HOME), e.g. once into a volume that
    every worker mounts; workers then run with HF_HUB_OFFLINE=1. --export also builds its ONNX
    export, which the onnx backend would otherwise build on first use."""
    from soundtag import hub

    if random is not None:
        if model:
            fail("give a hub id or --random DIR, not both")
        from model.random_clap import build

        console.print(f"random CLAP in {build(random, 'tiny')}: use it with --model {random}")
        return

    settings = load_settings(model=model, dtype=dtype)
    if hub.is_local(settings.model):
        hub.check(settings.model)
        if not export:
            console.print(f"{settings.model_ref}: a local folder, nothing to fetch")
    else:
        from huggingface_hub import snapshot_download

        try:
            path = snapshot_download(settings.model)
        except Exception as exc:  # noqa: BLE001 - hub errors are many; the user needs one line
            fail(f"model {settings.model}: cannot fetch: {first_line(exc)}")
        console.print(f"{settings.model}: in the cache at {path}")
    if export:
        from model.onnx_export import exported

        # bf16 is a precision OpenVINO computes the fp32 towers in, not a file of its own.
        done = exported(settings.model, "int8" if settings.dtype == "int8" else "fp32", settings.export_dir)
        console.print(f"{settings.model_ref}: exported to ONNX in {done.folder}")
        from model.openvino_towers import compile_ahead

        if (kept := compile_ahead(done, settings.dtype)) is not None:
            console.print(f"{settings.model_ref}: compiled by OpenVINO at {settings.dtype} into {kept}")


@db_app.command("upgrade")
def db_upgrade(database: Database = None) -> None:
    """Create or migrate the schema to the newest version."""
    from db.schema import engine_for, safe_url, upgrade

    engine = engine_for(load_settings(database_url=database).database_url)
    upgrade(engine)
    console.print(f"schema up to date: {safe_url(engine)}")
