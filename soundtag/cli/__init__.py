"""The ``soundtag`` command. Starts fast: torch and transformers load only in commands that run
the model.

Here: the Typer app, its root options and the error boundary (``main``). The commands live by
group, each parsing its options, checking them, calling the product and printing: ``labeling``
(run, enqueue, scan, worker), ``jobs`` (status, jobs, cancel, requeue), ``review`` (review,
estimate, export, import-reviews), ``vectors`` (relabel, search, export-embeddings), ``quality`` (evaluate,
calibrate), ``learning`` (train, export-head), ``admin`` (fetch-model, db), ``monitoring`` (exporter), ``archive`` (recordings set-time). ``common`` holds what they share, ``progress`` the bars,
``process`` the process set-up."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
import typer.core

from soundtag.cli import admin, archive, jobs, labeling, learning, monitoring, quality, review, team, vectors
from soundtag.cli.options import console, styled
from soundtag.cli.process import freeze_for_exit, quiet_libraries, silence_native_stderr
from soundtag.errors import SoundtagError, describe

# A flag takes no value: typer's help would still show a `<bool>` type beside it.
_display_type = typer.core.TyperOption.display_type_rich
typer.core.TyperOption.display_type_rich = lambda self, ctx: None if self.is_flag else _display_type(self, ctx)

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Zero-shot labeling of sound archives with CLAP.")
app.add_typer(admin.db_app, name="db")
app.add_typer(archive.recordings_app, name="recordings")
app.add_typer(team.reviewers_app, name="reviewers")
app.command()(labeling.run)
app.command()(labeling.enqueue)
app.command()(labeling.scan)
app.command()(jobs.status)
app.command()(jobs.jobs)
app.command()(jobs.cancel)
app.command()(jobs.requeue)
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(labeling.worker)
app.command()(quality.evaluate)
app.command()(quality.calibrate)
app.command()(review.review)
app.command()(review.estimate)
app.command()(vectors.relabel)
app.command()(vectors.search)
app.command("export-embeddings")(vectors.export_embeddings)
app.command()(review.export)
app.command("import-reviews")(review.import_reviews)
app.command()(team.agreement)
app.command()(learning.train)
app.command("export-head")(learning.export_head)
app.command("fetch-model")(admin.fetch_model)
app.command()(monitoring.exporter)

_debug = False


@app.callback()
def _root(ctx: typer.Context, debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
          verbose: Annotated[bool, typer.Option("--verbose", help="Show the libraries' own warnings and "
                                                "progress bars.")] = False) -> None:
    global _debug
    _debug = debug
    if not (verbose or debug):
        quiet_libraries()
        if ctx.invoked_subcommand == "run":
            silence_native_stderr()


def main() -> None:
    """Entry point: usage errors are click's; a SoundtagError prints its one line, anything else
    one line and how to see the traceback; both exit 1."""
    try:
        app()
    except SoundtagError as exc:
        if _debug:
            raise
        console.print(styled("bold red", "error:", f" {exc}"))
        sys.exit(1)
    except Exception as exc:  # noqa: BLE001 - the one place errors become messages
        if _debug:
            raise
        console.print(styled("bold red", "error:", f" {describe(exc)}\n(run with --debug for the traceback)"))
        sys.exit(1)
    finally:
        freeze_for_exit()
