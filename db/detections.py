"""A job's detections in time, as the overview page reads them: windows tagged per site, hour
and label, the recordings that make the effort, the windows a chart's point counts, and a
label's score histogram.

These read the segment table directly with the tagging rule of ``segment_tags`` (db/views.py)
written out per label: a label that is no background tags a window when its cosine reaches its
threshold, or, without one, when it is the window's rank-1 label. Through the views, which unnest
every label of every window, a job of 1M windows took minutes; here it is one scan, whose result
is kept between requests (db/summaries.py) until what it read changes. Groups
(parents) are not counted: the overview shows labels. tests/test_overview.py holds the numbers
equal to the views'."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, text

from db import summaries
from db.jobs import job_labelings, job_spec
from db.models import File


@dataclass(frozen=True)
class Tagged:
    """Windows of the job that ``label`` tags, of one site and hour (None: unknown)."""

    site: str | None
    hour: str | None  # 'YYYY-MM-DD HH' (UTC) in which they start
    label: str
    windows: int
    minutes: float


@dataclass(frozen=True)
class Recording:
    """One of the job's labeled files with a known time: what makes the effort."""

    site: str | None
    recorded_at: datetime  # UTC
    duration_s: float


# All sites, or one: the parameter typed, as PostgreSQL cannot infer the type of a bare `:site IS NULL`.
_SITE = "(CAST(:site AS TEXT) IS NULL OR f.site = CAST(:site AS TEXT))"


# The job's windows by its model and taxonomy, with their file (f).
_WINDOWS = """
        FROM segment s
        JOIN labeling l ON l.id = s.labeling_id AND l.model = :model AND l.taxonomy_id = :taxonomy_id
        JOIN job_file jf ON jf.file_id = l.file_id AND jf.job_id = :job
        JOIN file f ON f.id = l.file_id"""


def _cosine(engine: Engine, position: int) -> str:
    if engine.dialect.name == "postgresql":
        return f"s.similarities[{position + 1}]::double precision"
    return f"json_extract(s.similarities, '$[{position}]')"


def _start_hour(engine: Engine) -> str:
    """The hour (UTC) a window starts in; formatted by ``_hour``, after the grouping."""
    if engine.dialect.name == "postgresql":
        return "date_trunc('hour', (f.recorded_at AT TIME ZONE 'UTC') + s.start_s * INTERVAL '1 second')"
    return "strftime('%Y-%m-%d %H', f.recorded_at, printf('%+.6f seconds', s.start_s))"


def _hour(value) -> str | None:
    """An hour as 'YYYY-MM-DD HH': PostgreSQL gives a timestamp, SQLite the text already."""
    return value.strftime("%Y-%m-%d %H") if isinstance(value, datetime) else value


def _rules(engine: Engine, job_id: str) -> tuple[dict, dict[str, str]]:
    """The query's parameters for the job, and per label (not background) the SQL condition
    under which it tags a window, as segment_tags decides it."""
    spec = job_spec(engine, job_id)
    names = spec.taxonomy.names
    with engine.connect() as conn:
        policy = conn.execute(text("SELECT label, threshold, background FROM taxonomy_label "
                                   "WHERE taxonomy_id = :t AND NOT is_group"), {"t": spec.taxonomy_id}).all()
    params = {"job": job_id, "model": spec.model, "taxonomy_id": spec.taxonomy_id}
    rules = {}
    for label, threshold, background in sorted(policy, key=lambda row: names.index(row[0])):
        if background:
            continue
        position = names.index(label)
        params[f"label_{position}"] = label
        rules[label] = (f"s.top_label = :label_{position}" if threshold is None
                        else f"{_cosine(engine, position)} >= {float(threshold)!r}")
    return params, rules


def tagged(engine: Engine, job_id: str, site: str | None = None) -> list[Tagged]:
    """Per site, hour (UTC; None for recordings of unknown time) and label, the job's windows it
    tags and their minutes: one scan of the job's windows, kept (db/summaries.py) until the
    job's labelings, its files' times and sites or the labels' thresholds change."""
    params, rules = _rules(engine, job_id)
    if not rules:
        return []
    rows = summaries.kept(engine, job_id, "tagged", summaries.stamp(engine, job_id, rules),
                          lambda: _tagged(engine, params, rules))
    return [Tagged(*row) for row in rows if site is None or row[0] == site]


def _tagged(engine: Engine, params: dict, rules: dict[str, str]) -> list[list]:
    labels = list(rules)
    sums = ", ".join(f"SUM(CASE WHEN {rules[label]} THEN 1 ELSE 0 END), "
                     f"SUM(CASE WHEN {rules[label]} THEN s.end_s - s.start_s ELSE 0 END)" for label in labels)
    query = text(f"SELECT f.site, {_start_hour(engine)} AS hour, {sums} {_WINDOWS} "
                 f"GROUP BY f.site, {_start_hour(engine)}")
    with engine.connect() as conn:
        rows = conn.execute(query, params).all()
    return [[where, _hour(hour), label, int(counts[2 * n]), float(counts[2 * n + 1]) / 60.0]
            for where, hour, *counts in rows for n, label in enumerate(labels) if counts[2 * n]]


def recordings(engine: Engine, job_id: str, site: str | None = None) -> list[Recording]:
    """The job's files labeled by its model and taxonomy whose recording time is known."""
    spec = job_spec(engine, job_id)
    query = (job_labelings(job_id, spec, File.site, File.recorded_at, File.duration_s)
             .where(File.recorded_at.is_not(None), File.duration_s > 0))
    if site is not None:
        query = query.where(File.site == site)
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    # SQLite gives the stored UTC time without its zone; PostgreSQL a timestamptz.
    return [Recording(where, at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc),
                      float(duration)) for where, at, duration in rows]


def detected(engine: Engine, job_id: str, label: str, site: str | None = None, day: str | None = None,
             hour: int | None = None) -> set[tuple[int, float, float]]:
    """The windows (file id, start_s, end_s) of the job that ``label`` tags, of ``site``, starting
    on ``day`` ('YYYY-MM-DD', UTC) and in ``hour`` of the day where given: what a chart's point
    counts."""
    params, rules = _rules(engine, job_id)
    if label not in rules:
        return set()
    query = text(f"SELECT f.id, s.start_s, s.end_s, {_start_hour(engine)} {_WINDOWS} "
                 f"WHERE {rules[label]} AND {_SITE}")
    with engine.connect() as conn:
        rows = conn.execute(query, {**params, "site": site}).all()
    return {(file_id, start, end) for file_id, start, end, at in ((i, s, e, _hour(a)) for i, s, e, a in rows)
            if (day is None or (at is not None and at[:10] == day))
            and (hour is None or (at is not None and int(at[11:13]) == hour))}


def _cell(score: float) -> int:
    """The first cell of the histogram's 1/1000 grid at or above ``score`` (a bin's edge): a cell
    on an edge is the upper bin's, as ``score_histogram`` counts it."""
    return math.ceil((score - 1e-7) * 1000)


def scored(engine: Engine, job_id: str, label: str, low: float, high: float) -> set[tuple[int, float, float]]:
    """The windows (file id, start_s, end_s) of the job whose ``label`` score falls in the
    histogram bin from ``low`` to ``high`` (its edges, as ``score_histogram`` gives them), tagged
    or not: what a bin counts."""
    params, _ = _rules(engine, job_id)
    cell = f"FLOOR({_cosine(engine, job_spec(engine, job_id).taxonomy.names.index(label))} * 1000)"
    query = text(f"SELECT f.id, s.start_s, s.end_s {_WINDOWS} WHERE {cell} >= :low AND {cell} < :high")
    with engine.connect() as conn:
        return {tuple(row) for row in conn.execute(query, {**params, "low": _cell(low), "high": _cell(high)})}


def score_histogram(engine: Engine, job_id: str, label: str, bins: int = 20) -> tuple[list[float], list[int]]:
    """The histogram of ``label``'s score (its cosine, or a head's probability, as its threshold
    is compared with) over every window of the job: ``bins`` + 1 edges from the least score to
    the greatest, rounded out to the 1/1000 (one scan: the windows are counted on that grid, then
    the grid's cells summed into the bins), and the windows in each bin."""
    params, _ = _rules(engine, job_id)
    value = _cosine(engine, job_spec(engine, job_id).taxonomy.names.index(label))

    def count() -> list[list[int]]:
        with engine.connect() as conn:
            return [[int(g), int(n)] for g, n in conn.execute(text(
                f"SELECT CAST(FLOOR({value} * 1000) AS INTEGER) AS g, COUNT(*) {_WINDOWS} GROUP BY 1"), params)]

    grid = summaries.kept(engine, job_id, f"scores:{label}", summaries.stamp(engine, job_id), count)
    if not grid:
        return [], []
    low, high = min(g for g, _ in grid) / 1000, (max(g for g, _ in grid) + 1) / 1000
    width = (high - low) / bins
    counts = [0] * bins
    for g, n in grid:
        counts[min(bins - 1, int((g / 1000 - low) / width + 1e-9))] += int(n)
    return [low + width * b for b in range(bins + 1)], counts


def threshold(engine: Engine, job_id: str, label: str) -> float | None:
    """The label's threshold in the job's taxonomy (None: rank 1 tags)."""
    spec = job_spec(engine, job_id)
    with engine.connect() as conn:
        return conn.execute(text("SELECT threshold FROM taxonomy_label WHERE taxonomy_id = :t AND label = :label"),
                            {"t": spec.taxonomy_id, "label": label}).scalar_one_or_none()


def file_sites(engine: Engine, job_id: str) -> dict[int, str | None]:
    """Each of the job's files' site."""
    with engine.connect() as conn:
        return dict(conn.execute(text("SELECT f.id, f.site FROM file f JOIN job_file jf ON jf.file_id = f.id "
                                      "WHERE jf.job_id = :job"), {"job": job_id}).all())
