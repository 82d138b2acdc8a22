"""Estimates ``soundtag estimate`` computed, kept as rows (the ``estimates`` view shows the latest)."""

from __future__ import annotations

from sqlalchemy import Engine, insert

from db.models import EstimateRow, now


def save_estimate(engine: Engine, job_id: str, label: str, site: str | None, found) -> None:
    """Append one estimate (a soundtag.estimate.Estimate) of the job's label over ``site`` (None: all)."""
    row = {"job_id": job_id, "label": label, "site": site, "windows": found.windows, "verdicts": found.verdicts,
           "computed_at": now()}
    for name in ("prevalence", "precision", "recall"):
        measure = getattr(found, name)
        row.update({name: measure and measure.value, f"{name}_low": measure and measure.low,
                    f"{name}_high": measure and measure.high})
    with engine.begin() as conn:
        conn.execute(insert(EstimateRow), [row])
