"""Detections in time: the detections and detections_by_hour views against hand counts, the
estimate from a validation sample against a hand computation, and the /overview page in
Chromium (each chart drawn, its numbers the views', a click opening the review of what it counts)."""

from __future__ import annotations

import json
import re
import urllib.request
from datetime import datetime, timezone

import numpy as np
import pytest

from db.files import add_files
from db.jobs import create_job
from db.results import save_results
from db.reviews import Given, record_verdicts
from model.results import FileResult, WindowResult
from review.overview import overview
from review.validation import validation_items
from soundtag.fileref import FileRef
from soundtag.settings import Settings
from soundtag.states import Verdict
from soundtag.taxonomy import taxonomy_from_canonical
from tests.conftest import query, soundtag
from tests.test_review import browser, server  # noqa: F401 - the fixtures

UTC = timezone.utc
TAXONOMY = {"name": "field", "labels": ["rain", "bird", "wind"], "threshold": 0.3}
RAIN, BIRD, QUIET = [0.5, 0.1, 0.1], [0.1, 0.4, 0.1], [0.1, 0.1, 0.2]


def _file(name, recorded_at, site, cosines):
    """A result of one-minute windows with these cosines (rain, bird, wind)."""
    windows = [WindowResult(60.0 * n, 60.0 * (n + 1), np.array([0.4, 0.3, 0.3]), np.array(c))
               for n, c in enumerate(cosines)]
    return FileResult(f"file:///archive/{name}", duration_s=60.0 * len(cosines), scores=np.array([0.4, 0.3, 0.3]),
                      similarity=np.mean(cosines, axis=0), segments=windows, recorded_at=recorded_at, site=site)


# pond/a: 10 minutes from 05:55 (5 in hour 05, 5 in hour 06): rain in its first 3 windows (05:55-05:58)
# and at 06:02 and 06:03, a bird at 06:00. meadow/b: 5 minutes from noon, rain in the first. c: when
# unknown, rain in both its windows.
FILES = [
    _file("pond/a.wav", datetime(2024, 5, 1, 5, 55, tzinfo=UTC), "pond",
          [RAIN, RAIN, RAIN, QUIET, QUIET, BIRD, QUIET, RAIN, RAIN, QUIET]),
    _file("meadow/b.wav", datetime(2024, 5, 2, 12, 0, tzinfo=UTC), "meadow", [RAIN, QUIET, QUIET, QUIET, QUIET]),
    _file("meadow/c.wav", None, "meadow", [RAIN, RAIN]),
]


def _job(engine):
    job = create_job(engine, taxonomy_from_canonical(TAXONOMY), Settings(model="m"), kind="run", sources=["/archive"])
    add_files(engine, job, [FileRef(r.uri, fingerprint="1") for r in FILES])
    save_results(engine, job, FILES, ["rain", "bird", "wind"], logit_scale=10.0)
    return job


def _url(engine):
    return engine.url.render_as_string(hide_password=False)


def test_detections_carry_site_and_absolute_time(engine):
    _job(engine)
    rows = query(_url(engine), "select uri, site, label, start_s, starts_at, ends_at from detections order by uri, start_s")
    found = [(uri.rsplit("/", 1)[1], site, label, start, None if at is None else str(at)[:19],
              None if end is None else str(end)[:19]) for uri, site, label, start, at, end in rows]
    a = [row for row in found if row[0] == "a.wav"]
    assert [(row[2], row[4]) for row in a] == [
        ("rain", "2024-05-01 05:55:00"), ("rain", "2024-05-01 05:56:00"), ("rain", "2024-05-01 05:57:00"),
        ("bird", "2024-05-01 06:00:00"), ("rain", "2024-05-01 06:02:00"), ("rain", "2024-05-01 06:03:00")]
    assert a[0][5] == "2024-05-01 05:56:00"
    assert [row[1:5] for row in found if row[0] == "c.wav"] == [("meadow", "rain", 0.0, None), ("meadow", "rain", 60.0, None)]
    assert len(found) == 9


def test_detections_by_hour_counts_windows_against_minutes_recorded(engine):
    _job(engine)
    rows = query(_url(engine), "select site, label, hour, windows, detected_minutes, recorded_minutes "
                               "from detections_by_hour")
    found = {(site, label, str(hour)[:13]): (windows, detected, recorded)
             for site, label, hour, windows, detected, recorded in rows}
    assert len(found) == 9  # three hours recorded × three labels; c, of unknown time, is in none
    assert found[("pond", "rain", "2024-05-01 05")] == (3, pytest.approx(3.0), pytest.approx(5.0))
    assert found[("pond", "rain", "2024-05-01 06")] == (2, pytest.approx(2.0), pytest.approx(5.0))
    assert found[("pond", "bird", "2024-05-01 06")] == (1, pytest.approx(1.0), pytest.approx(5.0))
    assert found[("pond", "wind", "2024-05-01 05")] == (0, 0, pytest.approx(5.0))
    assert found[("meadow", "rain", "2024-05-02 12")] == (1, pytest.approx(1.0), pytest.approx(5.0))
    # The documented query: minutes of rain per site per month, and per recorded minute.
    monthly = query(_url(engine), "select site, sum(detected_minutes), sum(detected_minutes) / sum(recorded_minutes) "
                                  "from detections_by_hour where label = 'rain' group by site order by site")
    assert [(site, minutes, rate) for site, minutes, rate in monthly] == [
        ("meadow", pytest.approx(1.0), pytest.approx(0.2)), ("pond", pytest.approx(5.0), pytest.approx(0.5))]


def test_overview_numbers_are_the_views(engine):
    job = _job(engine)
    found = overview(engine, job)
    assert found["totals"]["rain"] == {"windows": 8, "minutes": pytest.approx(8.0)}
    assert found["days"] == ["2024-05-01", "2024-05-02"]
    assert found["per_day"]["rain"] == [5, 1] and found["effort_per_day"] == pytest.approx([10.0, 5.0])
    assert found["per_hour_of_day"]["rain"][5:7] == [3, 2] and found["per_hour_of_day"]["rain"][12] == 1
    assert found["sites"] == ["meadow", "pond"] and found["per_site"]["rain"] == [1, 5]
    assert found["diel"]["bird"][0][6] == 1 and found["diel_effort"][0][5] == pytest.approx(5.0)
    # The same numbers as the views give them.
    url = _url(engine)
    for label, windows in query(url, "select label, count(*) from detections group by label"):
        assert found["totals"][label]["windows"] == windows
    for label, day, windows, minutes in query(url, "select label, substr(cast(hour as text), 1, 10), sum(windows), "
                                                   "sum(recorded_minutes) from detections_by_hour group by 1, 2"):
        assert found["per_day"][label][found["days"].index(day)] == windows
        assert found["effort_per_day"][found["days"].index(day)] == pytest.approx(minutes)


def test_validation_sample_takes_each_score_bin_in_turn(engine):
    job = _job(engine)
    items = validation_items(engine, job, "rain")
    assert len(items) == 17 and {item.decision for item in items} == {"rain"}
    rain_cosine = {(r.uri, w.start_s): w.similarity[0] for r in FILES for w in r.segments}
    # Two bins hold windows (the tagged 0.5s, the rest at 0.1): the top one first, then in turn.
    assert [rain_cosine[(i.uri, i.start_s)] for i in items[:4]] == pytest.approx([0.5, 0.1, 0.5, 0.1])


def test_estimate_from_verdicts_matches_a_hand_computation(engine):
    job = _job(engine)
    a = "file:///archive/pond/a.wav"
    ids = dict(query(_url(engine), "select uri, id from file"))
    judged = [(0.0, Verdict.ACCEPT), (60.0, Verdict.REJECT), (180.0, Verdict.REJECT), (240.0, Verdict.REJECT)]
    record_verdicts(engine, {job: [Given(ids[a], verdict, "ann", "rain", start, start + 60.0)
                                   for start, verdict in judged]})
    proc = soundtag("estimate", "rain", "--by", "site", "--database", _url(engine).replace("+psycopg", ""))
    assert re.search(r"pond\s+10\s+4\s+0\.250 \[", proc.stdout)
    rows = {site: row for site, *row in query(_url(engine), "select site, windows, verdicts, prevalence, precision, "
                                                            "recall from estimates where label = 'rain'")}
    # pond: 5 untagged windows (bin of 0.1), 2 judged, none holding rain; 5 tagged, 2 judged, 1 holding it.
    # prevalence (5 × 0 + 5 × ½) / 10; precision ½; recall: every window holding rain is tagged.
    assert rows["pond"] == [10, 4, pytest.approx(0.25), pytest.approx(0.5), pytest.approx(1.0)]
    assert rows["meadow"][:2] == [7, 0]  # nothing judged there: the prior's ½ and a wide interval
    low, high = query(_url(engine), "select prevalence_low, prevalence_high from estimates where site = 'meadow'")[0]
    assert low < 0.2 and high > 0.8


def _painted(page, selector: str) -> int:
    """Pixels of the canvas at ``selector`` that are drawn on (neither transparent nor white)."""
    return page.evaluate("""(selector) => {
        const canvas = document.querySelector(selector);
        const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let drawn = 0;
        for (let i = 0; i < pixels.length; i += 4)
            if (pixels[i + 3] > 0 && !(pixels[i] > 250 && pixels[i + 1] > 250 && pixels[i + 2] > 250)) drawn++;
        return drawn;
    }""", selector)


def test_the_review_server_prepares_the_overview_before_anyone_asks(sqlite_url, server):  # noqa: F811
    """The page's first look reads kept summaries: `soundtag review` computes them as it starts."""
    from db.schema import engine_for, ensure_schema
    from tests.conftest import wait_for

    engine = engine_for(sqlite_url)
    ensure_schema(engine)
    job = _job(engine)
    server("--database", sqlite_url, "--unit", "window", "--job", job).wait_ready()

    def kept():
        return {name for name, in query(sqlite_url, f"select name from job_summary where job_id = '{job}'")}

    labels = {f"scores:{name}" for name, in query(sqlite_url, "select label from taxonomy_label where not is_group")}
    assert labels
    wait_for(lambda: kept() >= {"tagged"} | labels, 60, "the overview's summaries to be kept")


def test_overview_page_draws_each_chart_and_opens_the_review_of_a_day(sqlite_url, server, browser):  # noqa: F811
    from db.schema import engine_for, ensure_schema

    engine = engine_for(sqlite_url)
    ensure_schema(engine)
    job = _job(engine)
    review = server("--database", sqlite_url, "--unit", "window", "--job", job)
    review.wait_ready()
    page = browser.new_page()
    page.goto(review.url + "/overview?label=rain")
    page.wait_for_selector("body[data-state=ready]")
    for chart in ("labels", "days", "hours", "sites", "histogram"):
        assert _painted(page, f"#{chart} canvas") > 500, chart
    assert _painted(page, "#diel canvas.heatmap") > 500

    with page.expect_download() as download:
        page.click("#days button[data-export=csv]")
    lines = open(download.value.path()).read().splitlines()
    assert lines == ["x,rain windows,minutes recorded", "2024-05-01,5,10", "2024-05-02,1,5"]
    with page.expect_download() as download:
        page.click("#days button[data-export=png]")
    assert open(download.value.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n"

    # The first day's bar: the review of the 5 windows rain tags that day.
    page.locator("#days .u-over").scroll_into_view_if_needed()
    over = page.locator("#days .u-over").bounding_box()
    page.mouse.move(over["x"] + over["width"] * 0.25, over["y"] + over["height"] * 0.9)
    page.mouse.click(over["x"] + over["width"] * 0.25, over["y"] + over["height"] * 0.9)
    # The review page's load waits for recordings these rows only name: the address is what matters.
    page.wait_for_url(re.compile(r"/\?label=rain&day=2024-05-01$"), wait_until="commit")
    with urllib.request.urlopen(review.url + "/api/items?" + page.url.split("?", 1)[1]) as response:
        shown = json.load(response)["items"]
    assert sorted((item["name"].rsplit("/", 1)[1], item["start"]) for item in shown) == [
        ("a.wav", 0.0), ("a.wav", 60.0), ("a.wav", 120.0), ("a.wav", 420.0), ("a.wav", 480.0)]


def test_a_histogram_bin_opens_the_review_of_exactly_its_windows(sqlite_url, server, browser):  # noqa: F811
    from db.schema import engine_for, ensure_schema

    engine = engine_for(sqlite_url)
    ensure_schema(engine)
    job = _job(engine)
    review = server("--database", sqlite_url, "--unit", "window", "--job", job)
    review.wait_ready()
    page = browser.new_page()
    page.goto(review.url + "/overview?label=rain")
    page.wait_for_selector("body[data-state=ready]")
    # Rain's scores are 0.1 or 0.5: the first of 20 bins holds the 9 windows at 0.1, which rain
    # does not tag (the label's review would show the 8 it tags instead).
    page.locator("#histogram .u-over").scroll_into_view_if_needed()
    over = page.locator("#histogram .u-over").bounding_box()
    x, y = over["x"] + over["width"] * 0.5 / 20, over["y"] + over["height"] * 0.9
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    page.wait_for_url(re.compile(r"/\?label=rain&low=0\.1&high="), wait_until="commit")
    with urllib.request.urlopen(review.url + "/api/items?" + page.url.split("?", 1)[1]) as response:
        shown = json.load(response)["items"]
    assert sorted((item["name"].rsplit("/", 1)[1], item["start"]) for item in shown) == [
        ("a.wav", 180.0), ("a.wav", 240.0), ("a.wav", 300.0), ("a.wav", 360.0), ("a.wav", 540.0),
        ("b.wav", 60.0), ("b.wav", 120.0), ("b.wav", 180.0), ("b.wav", 240.0)]
