"""A job's detections in time, as the overview page and ``soundtag estimate`` read them: the
``detections`` and ``detections_by_hour`` views for the job's model, taxonomy and files, the
histogram of a label's scores, and its windows with their sites.

The views are read filtered by the job's model and taxonomy and joined to the job's files, so
the numbers are the views' own."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import Engine, text

from db.jobs import job_spec


# All sites, or one: the parameter typed, as PostgreSQL cannot infer the type of a bare `:site IS NULL`.
_SITE = "(CAST(:site AS TEXT) IS NULL OR {alias}.site = CAST(:site AS TEXT))"


@dataclass(frozen=True)
class HourRow:
    """A row of ``detections_by_hour`` for one of the job's sites (None: unknown) and labels."""

    site: str | None
    label: str
    hour: str  # 'YYYY-MM-DD HH' (UTC)
    windows: int
    detected_minutes: float
    recorded_minutes: float


def _scope(engine: Engine, job_id: str) -> dict:
    spec = job_spec(engine, job_id)
    with engine.connect() as conn:
        taxonomy_hash = conn.execute(text("SELECT content_hash FROM taxonomy WHERE id = :id"),
                                     {"id": spec.taxonomy_id}).scalar_one()
    return {"job": job_id, "model": spec.model, "taxonomy_hash": taxonomy_hash}


def _hour(value) -> str:
    """An hour as the views give it (a timestamp on PostgreSQL, text on SQLite), as 'YYYY-MM-DD HH'."""
    return value.strftime("%Y-%m-%d %H") if isinstance(value, datetime) else str(value)[:13]


def label_totals(engine: Engine, job_id: str, site: str | None = None) -> dict[str, tuple[int, float]]:
    """Per label: the job's windows it tags (``detections``) and their minutes."""
    query = text(f"""
        SELECT d.label, COUNT(*), SUM(d.end_s - d.start_s) / 60.0
        FROM detections d
        JOIN file f ON f.uri = d.uri
        JOIN job_file jf ON jf.file_id = f.id AND jf.job_id = :job
        WHERE d.model = :model AND d.taxonomy_hash = :taxonomy_hash AND {_SITE.format(alias="d")}
        GROUP BY d.label""")
    with engine.connect() as conn:
        rows = conn.execute(query, {**_scope(engine, job_id), "site": site}).all()
    return {label: (int(windows), float(minutes or 0.0)) for label, windows, minutes in rows}


def by_hour(engine: Engine, job_id: str, site: str | None = None) -> list[HourRow]:
    """The rows of ``detections_by_hour`` of the job's model and taxonomy, for the sites of the
    job's files, in hour order."""
    query = text(f"""
        SELECT h.site, h.label, h.hour, h.windows, h.detected_minutes, h.recorded_minutes
        FROM detections_by_hour h
        WHERE h.model = :model AND h.taxonomy_hash = :taxonomy_hash AND {_SITE.format(alias="h")}
          AND (h.site IS NULL OR h.site IN (SELECT f.site FROM file f JOIN job_file jf ON jf.file_id = f.id
                                             WHERE jf.job_id = :job))
        ORDER BY h.hour, h.site, h.label""")
    with engine.connect() as conn:
        rows = conn.execute(query, {**_scope(engine, job_id), "site": site}).all()
    return [HourRow(s, label, _hour(hour), int(w), float(dm or 0.0), float(rm or 0.0))
            for s, label, hour, w, dm, rm in rows]


def detected(engine: Engine, job_id: str, label: str, site: str | None = None, since: str | None = None,
             until: str | None = None, hour: int | None = None) -> set[tuple[int, float, float]]:
    """The windows (file id, start_s, end_s) of the job that ``label`` tags, of ``site``, starting
    in [since, until) ('YYYY-MM-DD HH…', UTC) and in ``hour`` of the day where given: what a
    chart's point counts."""
    query = text(f"""
        SELECT f.id, d.start_s, d.end_s, d.starts_at
        FROM detections d
        JOIN file f ON f.uri = d.uri
        JOIN job_file jf ON jf.file_id = f.id AND jf.job_id = :job
        WHERE d.model = :model AND d.taxonomy_hash = :taxonomy_hash AND d.label = :label
          AND {_SITE.format(alias="d")}""")
    with engine.connect() as conn:
        rows = conn.execute(query, {**_scope(engine, job_id), "label": label, "site": site}).all()

    def within(starts) -> bool:
        if since is None and until is None and hour is None:
            return True
        if starts is None:
            return False
        # PostgreSQL gives a timestamptz in the session's zone; SQLite UTC text.
        at = starts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S") if isinstance(starts, datetime) else str(starts)
        return ((since is None or at >= since) and (until is None or at < until)
                and (hour is None or int(at[11:13]) == hour))

    return {(file_id, start, end) for file_id, start, end, starts in rows if within(starts)}


def score_histogram(engine: Engine, job_id: str, label: str, bins: int = 20) -> tuple[list[float], list[int]]:
    """The histogram of ``label``'s score (its cosine, or a head's probability, as its threshold
    is compared with) over every window of the job: ``bins`` + 1 edges from the least to the
    greatest, and the windows in each bin (the last bin holds its top edge)."""
    scope = _scope(engine, job_id)
    spec = job_spec(engine, job_id)
    position = spec.taxonomy.names.index(label)
    value = (f"s.similarities[{position + 1}]" if engine.dialect.name == "postgresql"
             else f"json_extract(s.similarities, '$[{position}]')")
    windows = f"""
        SELECT {value} AS v
        FROM segment s
        JOIN labeling l ON l.id = s.labeling_id AND l.model = :model AND l.taxonomy_id = :taxonomy_id
        JOIN job_file jf ON jf.file_id = l.file_id AND jf.job_id = :job"""
    params = {"model": scope["model"], "job": job_id, "taxonomy_id": spec.taxonomy_id}
    with engine.connect() as conn:
        low, high = conn.execute(text(f"SELECT MIN(v), MAX(v) FROM ({windows}) w"), params).one()
        if low is None:
            return [], []
        width = (high - low) / bins or 1.0
        counts = dict(conn.execute(text(f"""
            SELECT CASE WHEN v >= :high THEN {bins - 1} ELSE CAST(FLOOR((v - :low) / :width) AS INTEGER) END AS b,
                   COUNT(*)
            FROM ({windows}) w GROUP BY 1"""), {**params, "low": low, "high": high, "width": width}).all())
    return [low + width * b for b in range(bins + 1)], [int(counts.get(b, 0)) for b in range(bins)]


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
