"""The decision views (file_tags, file_decisions, segment_tags, events) on SQLite and PostgreSQL:
thresholds on the cosine, abstention, background labels, hierarchy, and thresholds that change
without recomputing a score."""

import os
import re

import numpy as np
import pytest

from db.files import add_files
from db.jobs import create_job, job_spec
from db.results import save_results
from db.reviews import review_items
from db.schema import engine_for, ensure_schema
from db.taxonomies import save_taxonomy
from model.results import FileResult, WindowResult
from soundtag.fileref import FileRef
from soundtag.settings import Settings
from soundtag.taxonomy import taxonomy_from_canonical
from tests.audio_files import write
from tests.conftest import query, soundtag


def _url(engine):
    return engine.url.render_as_string(hide_password=False)


def _save(engine, taxonomy, results):
    job = create_job(engine, taxonomy, Settings(model="m"), kind="run", sources=["/a"])
    add_files(engine, job, [FileRef(r.uri, fingerprint="1") for r in results])
    save_results(engine, job, results, taxonomy.names, logit_scale=10.0)
    return job


def _result(name, scores, similarity, segments=()):
    return FileResult(f"file:///a/{name}", scores=np.array(scores), similarity=np.array(similarity),
                      duration_s=1.0, segments=list(segments))


def _rows(engine, sql):
    return sorted(tuple(row) for row in query(_url(engine), sql))


URBAN = {"name": "urban", "labels": ["siren", {"name": "dog", "parent": "animal"},
                                     {"name": "cat", "parent": "animal"}, {"name": "background", "background": True}]}
FILES = [  # scores (softmax) and cosines of siren, dog, cat, background
    _result("street", [0.6, 0.2, 0.1, 0.1], [0.40, 0.10, 0.05, 0.00]),
    _result("yard", [0.1, 0.5, 0.3, 0.1], [0.05, 0.35, 0.30, 0.00]),
    _result("unrelated", [0.4, 0.3, 0.2, 0.1], [0.02, 0.01, 0.00, -0.01]),  # confident softmax, low cosines
    _result("quiet", [0.1, 0.2, 0.1, 0.6], [0.10, 0.28, 0.05, 0.30]),
]


def test_without_thresholds_the_rank1_label_is_the_decision(engine):
    _save(engine, taxonomy_from_canonical({"name": "plain", "labels": ["siren", "dog", "cat", "wind"]}), FILES)
    decided = _rows(engine, "select uri, label, abstained from file_decisions")
    assert decided == [("file:///a/quiet", "wind", 0), ("file:///a/street", "siren", 0),
                       ("file:///a/unrelated", "siren", 0), ("file:///a/yard", "dog", 0)]
    assert _rows(engine, "select uri, label from file_tags") == [(uri, label) for uri, label, _ in decided]


def test_thresholds_tag_several_labels_and_abstain_on_unrelated_sounds(engine):
    _save(engine, taxonomy_from_canonical({**URBAN, "threshold": 0.2}), FILES)
    assert _rows(engine, "select uri, label, threshold from file_tags") == [
        ("file:///a/quiet", "animal", 0.2), ("file:///a/quiet", "dog", 0.2),
        ("file:///a/street", "siren", 0.2),
        ("file:///a/yard", "animal", 0.2), ("file:///a/yard", "cat", 0.2), ("file:///a/yard", "dog", 0.2)]
    decided = _rows(engine, "select uri, label, abstained from file_decisions where implied_by is null")
    # unrelated: siren has the best softmax score (0.4) but a cosine of 0.02: none passes.
    # quiet: dog passes, but the background label is rank 1, so the file abstains.
    assert decided == [("file:///a/quiet", None, 1), ("file:///a/street", "siren", 0),
                       ("file:///a/unrelated", None, 1), ("file:///a/yard", "dog", 0)]


def test_a_label_threshold_overrides_the_taxonomy_threshold(engine):
    tax = taxonomy_from_canonical({**URBAN, "threshold": 0.2,
                                   "labels": ["siren", {"name": "dog", "threshold": 0.36, "parent": "animal"},
                                              {"name": "cat", "parent": "animal"},
                                              {"name": "background", "background": True}]})
    _save(engine, tax, FILES)
    assert _rows(engine, "select uri, label, score from file_decisions where uri like '%yard'") == [
        ("file:///a/yard", "animal", pytest.approx(0.8)), ("file:///a/yard", "cat", 0.3)]
    assert ("file:///a/yard", "dog") not in _rows(engine, "select uri, label from file_tags")


def test_a_group_rolls_up_its_children(engine):
    _save(engine, taxonomy_from_canonical({**URBAN, "threshold": 0.2}), FILES)
    animal = _rows(engine, "select uri, score, similarity from file_tags where label = 'animal'")
    assert animal == [("file:///a/quiet", pytest.approx(0.3), 0.28), ("file:///a/yard", pytest.approx(0.8), 0.35)]
    assert _rows(engine, "select uri, implied_by from file_decisions where label = 'animal'") == [
        ("file:///a/yard", "dog")]


def test_a_group_tags_at_its_own_threshold(engine):
    groups = [{"name": "animal", "threshold": 0.32}]
    _save(engine, taxonomy_from_canonical({**URBAN, "threshold": 0.2, "groups": groups}), FILES)
    # animal's similarity: quiet 0.28 (passes the taxonomy's 0.2, not the group's 0.32), yard 0.35.
    assert _rows(engine, "select uri, threshold from file_tags where label = 'animal'") == [("file:///a/yard", 0.32)]


def test_saving_other_thresholds_keeps_the_hash_and_changes_the_decisions_at_once(engine):
    first = taxonomy_from_canonical({**URBAN, "threshold": 0.2})
    job = _save(engine, first, FILES)
    later = taxonomy_from_canonical({**URBAN, "threshold": 0.03})
    assert later.content_hash == first.content_hash
    assert save_taxonomy(engine, later) == job_spec(engine, job).taxonomy_id
    assert _rows(engine, "select uri, label from file_decisions where uri like '%unrelated'") == [
        ("file:///a/unrelated", None)]  # siren's 0.02 is still below 0.03
    save_taxonomy(engine, taxonomy_from_canonical({**URBAN, "threshold": 0.015}))
    assert _rows(engine, "select uri, label from file_decisions where uri like '%unrelated'") == [
        ("file:///a/unrelated", "siren")]


def test_the_review_page_decision_follows_the_thresholds(engine):
    job = _save(engine, taxonomy_from_canonical({**URBAN, "threshold": 0.2}), FILES)
    decided = {item.uri.rsplit("/", 1)[1]: item.decision for item in review_items(engine, job)}
    assert decided == {"street": "siren", "yard": "dog", "unrelated": None, "quiet": None}


def test_tagged_windows_merge_into_events(engine):
    hit, miss = [0.3, 0.05, 0.0, 0.0], [0.1, 0.05, 0.0, 0.0]
    scores = [0.7, 0.1, 0.1, 0.1]
    windows = [(0, 10, hit), (10, 20, hit), (15, 25, hit), (25, 35, miss), (30, 40, miss), (40, 50, hit),
               (50, 60, miss), (55, 65, hit)]
    segments = [WindowResult(float(s), float(e), np.array(scores), np.array(sim)) for s, e, sim in windows]
    _save(engine, taxonomy_from_canonical({**URBAN, "threshold": 0.2}),
          [_result("long", scores, [0.3, 0.05, 0.0, 0.0], segments)])
    assert len(_rows(engine, "select start_s from segment_tags where label = 'siren'")) == 5
    events = _rows(engine, "select label, start_s, end_s, max_similarity from events")
    assert [row[:3] for row in events] == [("siren", 0.0, 25.0), ("siren", 40.0, 50.0), ("siren", 55.0, 65.0)]
    assert [row[3] for row in events] == pytest.approx([0.3] * 3)  # window scores are kept as float32


def _cosines(url):
    rows = query(url, "select uri, label, score, similarity from file_labels")
    found: dict[str, dict[str, tuple[float, float]]] = {}
    for uri, label, score, similarity in rows:
        found.setdefault(uri, {})[label] = (score, similarity)
    return found


def _between(values, at):
    """A threshold between the sorted values at positions at-1 and at."""
    ordered = sorted(values)
    return (ordered[at - 1] + ordered[at]) / 2


def test_thresholds_between_real_cosines_decide_without_reading_audio(tmp_path, tiny_clap, database_url):
    archive = tmp_path / "archive"
    for i, freq in enumerate([220.0, 440.0, 880.0, 1760.0]):
        write(archive / f"f{i}.wav", seconds=2.0, freq=freq)
    plain = tmp_path / "urban.yaml"
    plain.write_text("name: urban\nlabels: [dog barking, rain, siren]\n")
    run = ("run", str(archive), "--model", str(tiny_clap), "--database", database_url)
    soundtag(*run, "--taxonomy", str(plain))
    cosines = _cosines(database_url)
    rain = _between([c["rain"][1] for c in cosines.values()], 2)
    siren = _between([c["siren"][1] for c in cosines.values()], 1)
    (tmp_path / "thresholds.yaml").write_text(
        f"name: urban\nthreshold: {siren}\nlabels:\n  - dog barking\n  - name: rain\n    threshold: {rain}\n"
        f"  - siren\n")
    # The audio becomes garbage of the same size and mtime: same fingerprint, so nothing may read it.
    for path in archive.iterdir():
        stat = path.stat()
        path.write_bytes(b"\0" * stat.st_size)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    proc = soundtag(*run, "--taxonomy", str(tmp_path / "thresholds.yaml"))
    assert "0 labeled, 0 failed, 4 skipped" in proc.stderr

    limits = {"dog barking": siren, "rain": rain, "siren": siren}
    expected_tags = sorted((uri, label) for uri, labels in cosines.items() for label, (_, sim) in labels.items()
                           if sim >= limits[label])
    assert sorted(tuple(r) for r in query(database_url, "select uri, label from file_tags")) == expected_tags
    assert len({uri for uri, label in expected_tags if label == "rain"}) == 2
    expected = {}
    for uri, labels in cosines.items():
        passing = [(score, label) for label, (score, sim) in labels.items() if sim >= limits[label]]
        expected[uri] = max(passing)[1] if passing else None
    decided = {uri: label for uri, label in query(database_url, "select uri, label from file_decisions")}
    assert decided == expected


def test_upgrade_gives_existing_taxonomies_a_plain_policy(sqlite_url):
    from alembic import command
    from sqlalchemy import text

    from db.schema import _alembic_config

    engine = engine_for(sqlite_url)
    config = _alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")
        conn.execute(text("insert into taxonomy (id, name, content_hash, body, created_at) values "
                          "(7, 'old', 'h', '{\"name\": \"old\", \"labels\": [{\"name\": \"owl\"}, {\"name\": \"crow\"}]}',"
                          " '2026-01-01')"))
    store_url = _url(engine)
    from db.schema import upgrade

    upgrade(engine)
    assert sorted(query(store_url, "select taxonomy_id, label, threshold, is_group from taxonomy_label")) == [
        (7, "crow", None, 0), (7, "owl", None, 0)]
    assert sorted(query(store_url, "select node, label from taxonomy_member")) == [("crow", "crow"), ("owl", "owl")]
    engine_for.cache_clear()
    engine.dispose()


TRUTH = {"street": "siren", "yard": "dog;cat", "unrelated": "siren", "quiet": "dog"}


def _job_with_truth(engine, taxonomy):
    job = create_job(engine, taxonomy, Settings(model="m"), kind="run", sources=["/a"])
    add_files(engine, job, [FileRef(r.uri, fingerprint="1", truth=TRUTH[r.uri.rsplit("/", 1)[1]])
                            for r in FILES])
    save_results(engine, job, FILES, taxonomy.names, logit_scale=10.0)
    return job


def test_calibrate_writes_the_taxonomy_with_thresholds_that_keep_the_target(engine, tmp_path):
    from soundtag.taxonomy import load_taxonomy

    tax = taxonomy_from_canonical({**URBAN, "threshold": 0.9, "groups": [{"name": "animal", "threshold": 0.5}]})
    job = _job_with_truth(engine, tax)
    out = tmp_path / "calibrated.yaml"
    proc = soundtag("calibrate", job, "--target-precision", "0.9", "--out", str(out), "--database", _url(engine))
    calibrated = load_taxonomy(out)
    assert calibrated.content_hash == tax.content_hash
    limits = {lb.name: lb.threshold for lb in calibrated.labels}
    # siren: 0.40 street (siren), 0.10 quiet (dog) → 0.40 keeps 100%; dog: 0.35 yard, 0.28 quiet, both dogs,
    # 0.10 street is not → 0.28; cat: 0.30 yard → 0.30. background keeps no threshold.
    assert limits == {"siren": 0.40, "dog": 0.28, "cat": 0.30, "background": None}
    assert {lb.name: lb.parent for lb in calibrated.labels}["dog"] == "animal"
    assert [(g.name, g.threshold) for g in calibrated.groups] == [("animal", 0.5)]  # calibrate leaves groups be
    assert "siren" in proc.stdout and "50.0%" in proc.stdout  # siren's recall: the unrelated one is missed


def _table(stdout):
    """The rows of a printed table, by their first cell."""
    rows = [[cell.strip() for cell in re.split("[│┃]", line)[1:-1]] for line in stdout.splitlines()
            if re.search("[│┃]", line)]
    return {row[0]: row[1:] for row in rows}


def test_evaluate_reports_coverage_and_precision_recall_at_the_thresholds(sqlite_url, tmp_path):
    engine = engine_for(sqlite_url)
    ensure_schema(engine)
    job = _job_with_truth(engine, taxonomy_from_canonical({**URBAN, "threshold": 0.2}))
    plot = tmp_path / "eval.png"
    out = soundtag("evaluate", job, "--plot", str(plot), "--database", sqlite_url).stdout

    # rank 1: street siren, yard dog (one of its truths), unrelated siren, quiet background.
    assert "accuracy 75.0% (3/4)" in out
    # At 0.2 unrelated (cosines of 0.02 and less) and quiet (background is rank 1) abstain.
    assert "coverage 50.0% (2/4 decided, 2 abstained), accuracy on covered files 100.0% (2/2)" in out
    rows = _table(out)
    header = rows.pop("class")
    assert header == ["support", "rank-1", "precision", "recall", "threshold", "tagged", "precision@t", "recall@t"]
    # siren tags street (0.40), not unrelated (0.02); dog tags yard (0.35) and quiet (0.28); cat tags yard (0.30).
    assert rows == {
        "siren": ["2", "2", "100.0%", "100.0%", "0.2000", "1", "100.0%", "50.0%"],
        "dog": ["2", "1", "100.0%", "50.0%", "0.2000", "2", "100.0%", "100.0%"],
        "cat": ["1", "0", "-", "0.0%", "0.2000", "1", "100.0%", "100.0%"],
        "background": ["0", "1", "0.0%", "-", "background", "0", "-", "-"]}
    assert "1 files have several truths" in out and "counts the 3 with one" in out
    for image in (plot, tmp_path / "eval-pr.png"):
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    engine_for.cache_clear()
    engine.dispose()


def test_a_file_exactly_at_its_threshold_is_tagged(engine):
    """`calibrate` sets a threshold equal to a file's cosine, as the views return it: that file passes."""
    plain = {"name": "edge", "labels": ["siren", "dog"]}
    segment = WindowResult(0.0, 1.0, np.array([0.4, 0.6]), np.array([0.1, 0.3]))
    _save(engine, taxonomy_from_canonical(plain), [_result("edge", [0.4, 0.6], [0.1, 0.3], [segment])])
    [(file_cosine,)] = query(_url(engine), "select similarity from file_labels where label = 'dog'")
    [(window_cosine,)] = query(_url(engine), "select similarity from segment_labels where label = 'dog'")
    _save(engine, taxonomy_from_canonical({**plain, "name": "file edge", "threshold": file_cosine}),
          [_result("edge", [0.4, 0.6], [0.1, 0.3], [segment])])
    assert _rows(engine, "select label from file_tags where taxonomy = 'file edge'") == [("dog",)]
    assert _rows(engine, "select label, abstained from file_decisions where taxonomy = 'file edge'") == [("dog", 0)]
    _save(engine, taxonomy_from_canonical({**plain, "name": "window edge", "threshold": window_cosine}),
          [_result("edge", [0.4, 0.6], [0.1, 0.3], [segment])])
    assert _rows(engine, "select label from segment_tags where taxonomy = 'window edge'") == [("dog",)]


def test_the_decision_is_the_passing_label_of_highest_score_and_a_tie_goes_to_the_higher_cosine(engine):
    """A file's score and cosine are means over its windows, so they need not rank labels alike."""
    files = [_result("louder", [0.5, 0.3, 0.1, 0.1], [0.30, 0.38, 0.00, 0.00]),  # siren: best score, lower cosine
             _result("tied", [0.4, 0.4, 0.1, 0.1], [0.33, 0.25, 0.00, 0.00])]  # by name, dog would win
    _save(engine, taxonomy_from_canonical({**URBAN, "threshold": 0.2}), files)
    assert _rows(engine, "select uri, label, abstained from file_decisions where implied_by is null") == [
        ("file:///a/louder", "siren", 0), ("file:///a/tied", "siren", 0)]


def test_the_models_decisions_and_tags_per_file_follow_the_views_for_that_model_and_taxonomy(engine):
    from db.decisions import model_decisions, model_tags
    from db.files import job_file_ids

    taxonomy = taxonomy_from_canonical({**URBAN, "threshold": 0.2})
    job = _save(engine, taxonomy, FILES)
    ids = job_file_ids(engine, job, [r.uri for r in FILES])
    street, yard, unrelated, quiet = (ids[r.uri] for r in FILES)
    spec = job_spec(engine, job)
    # yard decides dog (its parent animal follows as an implied row, not a decision); unrelated and quiet abstain.
    assert model_decisions(engine, "m", spec.taxonomy_id, list(ids.values())) == {street: "siren", yard: "dog"}
    assert model_tags(engine, "m", spec.taxonomy_id, list(ids.values())) == {
        street: {"siren"}, yard: {"animal", "cat", "dog"}, quiet: {"animal", "dog"}}
    assert model_tags(engine, "m", spec.taxonomy_id, [street]) == {street: {"siren"}}
    assert model_decisions(engine, "other", spec.taxonomy_id, list(ids.values())) == {}
    other = _save(engine, taxonomy_from_canonical({"name": "plain", "labels": ["siren", "dog", "cat", "wind"]}), FILES)
    assert model_decisions(engine, "m", job_spec(engine, other).taxonomy_id, [unrelated, quiet]) == {
        unrelated: "siren", quiet: "wind"}
    assert model_decisions(engine, "m", spec.taxonomy_id, [unrelated, quiet]) == {}  # the other taxonomy's stay out
    assert model_tags(engine, "other", spec.taxonomy_id, list(ids.values())) == {}
