"""Agreement numbers ``soundtag agreement`` computed, kept as rows (the ``agreement`` view shows
the latest batch of each job)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Engine, insert

from db.models import AgreementRow, now


def save_agreement(engine: Engine, job_id: str, found: Sequence) -> None:
    """Append one batch of soundtag.agreement.Measure rows of the job, under one stamp."""
    if not found:
        return
    stamp = now()
    with engine.begin() as conn:
        conn.execute(insert(AgreementRow), [
            {"job_id": job_id, "measure": one.measure, "label": one.label, "reviewer": one.reviewer,
             "other_reviewer": one.other_reviewer, "value": one.score.value, "items": one.score.items,
             "computed_at": stamp} for one in found])
