"""Job summaries kept between requests (db/summaries.py), as the overview reads them: read again
while nothing they count changed, computed again when results are saved again, a recording's time
moves (`recordings set-time`) or the labels' thresholds change."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import text

from db.files import set_recordings
from db.results import save_results
from db.taxonomies import save_taxonomy
from review.overview import histogram, overview
from soundtag.taxonomy import taxonomy_from_canonical
from tests.test_overview import FILES, QUIET, TAXONOMY, _file, _job


def _tamper(engine, job, name, body):
    """Overwrite a kept summary's body, so that a test sees whether it was read or computed."""
    with engine.begin() as conn:
        conn.execute(text("UPDATE job_summary SET body = :body WHERE job_id = :job AND name = :name"),
                     {"body": body, "job": job, "name": name})


def test_a_kept_summary_is_read_while_nothing_it_counts_changed(engine):
    job = _job(engine)
    assert overview(engine, job)["totals"]["rain"]["windows"] == 8
    assert sum(histogram(engine, job, "rain")["counts"]) == 17
    _tamper(engine, job, "tagged", '[["pond", "2024-05-01 05", "rain", 99, 1.0]]')
    _tamper(engine, job, "scores:rain", "[[100, 40]]")
    assert overview(engine, job)["totals"]["rain"]["windows"] == 99
    assert histogram(engine, job, "rain")["counts"][0] == 40


def test_a_kept_summary_follows_new_results_times_and_thresholds(engine):
    job = _job(engine)
    assert overview(engine, job)["totals"]["rain"]["windows"] == 8
    assert histogram(engine, job, "rain")["counts"][-1] == 8

    # pond/a labeled again: none of its 10 windows is rain any more.
    again = _file("pond/a.wav", datetime(2024, 5, 1, 5, 55, tzinfo=timezone.utc), "pond", [QUIET] * 10)
    save_results(engine, job, [again], ["rain", "bird", "wind"], logit_scale=10.0)
    assert overview(engine, job)["totals"]["rain"]["windows"] == 3
    assert histogram(engine, job, "rain")["counts"][-1] == 3

    # meadow/b found to be recorded a day later: its rain window moves to that day.
    set_recordings(engine, [(FILES[1].uri, datetime(2024, 5, 3, 12, 0, tzinfo=timezone.utc), "meadow")])
    found = overview(engine, job)
    assert found["days"] == ["2024-05-01", "2024-05-03"] and found["per_day"]["rain"] == [0, 1]

    # The taxonomy saved again with a threshold above every rain cosine: rain tags nothing.
    save_taxonomy(engine, taxonomy_from_canonical({**TAXONOMY, "threshold": 0.6}))
    assert overview(engine, job)["totals"]["rain"]["windows"] == 0
