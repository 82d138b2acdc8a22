"""``soundtag recordings set-time``: when and where each stored file was recorded, read again
from its header and name as labeling reads them (soundtag.recording), without relabeling it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from db.files import all_sources, scope_files, set_recordings
from soundtag.errors import ReadError, TransientReadError
from soundtag.recording import Rules, read
from soundtag.sources.storage import Storage
from soundtag.sources.uris import source_uri


@dataclass(frozen=True)
class SetTimes:
    files: int  # read and updated
    timed: int  # of those, with a recording time
    sited: int  # with a site
    unreadable: list[str]  # files that could not be read: left as they were


def set_times(engine: Engine, storage: Storage, rules: Rules, *, job_ids: Sequence[str] = (),
              sources: Sequence[str] = (), on_file: Callable[[str], None] | None = None) -> SetTimes:
    """Read the time and site of the files of ``job_ids``, or under ``sources`` (which are then the
    roots sites are the first folder below), or of every labeled file, and store them. A file that
    cannot be read keeps what it had."""
    roots = [source_uri(s) for s in (sources or all_sources(engine))]
    found, unreadable = [], []
    for ref in scope_files(engine, job_ids=job_ids, sources=[source_uri(s) for s in sources]):
        try:
            with storage.open(ref.uri) as f:
                when = read(f, ref.uri, roots, rules)
        except (ReadError, TransientReadError) as exc:
            unreadable.append(f"{ref.uri}: {exc}")
            continue
        found.append((ref.uri, when.recorded_at, when.site))
        if on_file:
            on_file(ref.uri)
    set_recordings(engine, found)
    return SetTimes(len(found), sum(1 for _, at, _ in found if at is not None),
                    sum(1 for _, _, site in found if site is not None), unreadable)
