"""When and where: ``recordings set-time`` (each stored file's recording time and site, read again)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from soundtag.cli.options import (
    Database,
    SitePattern,
    TimePattern,
    TimeZone,
    fail,
    open_engine,
    out,
    recording_rules,
)
from soundtag.cli.progress import print_left_out
from soundtag.settings import load_settings

recordings_app = typer.Typer(no_args_is_help=True, help="When and where recordings were made.")


@recordings_app.command("set-time")
def set_time(
    paths: Annotated[Optional[list[str]], typer.Argument(help="Folders or source URIs whose files to update (the "
                                                         "roots their sites are the first folder below); "
                                                         "default: every labeled file.")] = None,
    job: Annotated[Optional[list[str]], typer.Option("--job", help="Only the files of this job (repeatable).")]
    = None,
    time_pattern: TimePattern = None,
    timezone: TimeZone = None,
    site_pattern: SitePattern = None,
    database: Database = None,
) -> None:
    """Read each stored file's recording time and site again, from its metadata and name, with
    these rules; its labels are kept as they are."""
    from soundtag.sources.storage import Storage
    from worker.recordings import set_times

    if paths and job:
        fail("give folders or --job, not both")
    settings = load_settings(database_url=database, time_pattern=time_pattern, timezone=timezone,
                             site_pattern=site_pattern)
    rules = recording_rules(settings)
    engine = open_engine(settings)
    done = set_times(engine, Storage(settings.allowed_roots, settings.allowed_buckets), rules, job_ids=job or (),
                     sources=paths or ())
    out.print(f"{done.files} files: {done.timed} with a time, {done.sited} with a site")
    print_left_out(done.unreadable)
