"""The db modules directly, on SQLite and PostgreSQL: the upserts and the state changes that the
CLI, the producer and the workers all rely on."""

import json
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import text

from db import files, leases, segments
from db import sql as sql_module
from db.decisions import model_decisions
from db.files import (
    add_files,
    fail_files,
    failed_uris,
    file_ids,
    job_file_ids,
    new_or_changed,
    queued_uris,
    scope_files,
)
from db.jobs import (
    cancel_job,
    create_job,
    fail_job,
    finish_job_if_done,
    job_info,
    job_labelings,
    job_roots,
    job_spec,
    jobs,
    reactivate_job,
)
from db.labeled_files import labeled_files
from db.models import File, Labeling, Review
from db.predictions import job_cosines, job_predictions
from db.results import save_results
from db.reviews import (
    Given,
    all_verdicts,
    consensus,
    given_verdicts,
    record_verdict,
    record_verdicts,
    review_items,
    reviewer_votes,
    undo_verdict,
    verdict_counts,
    verdicts,
)
from db.schema import engine_for, upgrade
from db.taxonomies import label_embeddings, save_label_embeddings, save_taxonomy
from model.results import FileResult, WindowResult
from soundtag.errors import JobNotFound
from soundtag.fileref import FileRef
from soundtag.settings import Settings
from soundtag.states import FileState, JobState, Verdict
from soundtag.taxonomy import taxonomy_from_csv
from tests.conftest import query

TAX = taxonomy_from_csv("dog,rain")
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def _job(engine, taxonomy=TAX, model="m"):
    return create_job(engine, taxonomy, Settings(model=model), kind="run", sources=["/a"])


def _refs(*names, version="1"):
    return [FileRef(f"file:///a/{name}", fingerprint=f"{name}:{version}") for name in names]


def _ok(uri):
    scores = np.array([0.7, 0.3])
    return FileResult(uri, scores=scores, similarity=np.array([0.2, 0.1]), duration_s=1.0,
                      segments=[WindowResult(0.0, 1.0, scores, np.array([0.2, 0.1]))])


def _statuses(engine, job_id):
    return dict(query(str(engine.url.render_as_string(hide_password=False)),
                      f"select f.uri, j.status from job_file j join file f on f.id = j.file_id "
                      f"where j.job_id = '{job_id}'"))


def test_new_files_are_queued_and_a_rerun_skips_what_is_labeled(engine):
    first = _job(engine)
    assert [uri for _, uri in add_files(engine, first, _refs("a", "b"))] == ["file:///a/a", "file:///a/b"]
    save_results(engine, first, [_ok("file:///a/a"), FileResult("file:///a/b", error="corrupt")], TAX.names,
                       logit_scale=10.0)
    finish_job_if_done(engine, first)
    assert job_info(engine, first).state == JobState.COMPLETED

    second = _job(engine)
    assert add_files(engine, second, _refs("a", "b")) == []  # labeled, and failed at this fingerprint
    assert set(_statuses(engine, second).values()) == {FileState.SKIPPED}
    third = _job(engine)
    assert [uri for _, uri in add_files(engine, third, _refs("a", "b"), retry_failed=True)] == ["file:///a/b"]
    fourth = _job(engine)
    assert len(add_files(engine, fourth, _refs("a", "b"), force=True)) == 2


def test_a_changed_file_is_queued_again_and_its_status_reset(engine):
    job = _job(engine)
    add_files(engine, job, _refs("a"))
    save_results(engine, job, [FileResult("file:///a/a", error="corrupt")], TAX.names, logit_scale=10.0)
    again = _job(engine)
    assert len(add_files(engine, again, _refs("a", version="2"))) == 1
    url = engine.url.render_as_string(hide_password=False)
    assert query(url, "select status, error from file") == [("queued", None)]
    add_files(engine, again, _refs("b"))
    save_results(engine, again, [_ok("file:///a/b")], TAX.names, logit_scale=10.0)
    # Labeled by this model and taxonomy, but at its old fingerprint: labeled again.
    assert [uri for _, uri in add_files(engine, _job(engine), _refs("b", version="2"))] == ["file:///a/b"]


def test_a_new_job_of_an_old_file_erases_none_of_its_results(engine):
    url = engine.url.render_as_string(hide_password=False)
    job = _job(engine)
    add_files(engine, job, _refs("a"))
    save_results(engine, job, [_ok("file:///a/a")], TAX.names, logit_scale=10.0)
    other = _job(engine, taxonomy_from_csv("owl,crow"))
    add_files(engine, other, _refs("a"))
    assert query(url, "select status from file") == [("done",)]  # queued again, but its outcome stays
    cancel_job(engine, other)
    assert query(url, "select status from file") == [("done",)]
    failing = _job(engine, taxonomy_from_csv("owl,crow"))
    add_files(engine, failing, _refs("a"))
    save_results(engine, failing, [FileResult("file:///a/a", error="unreadable now")], ["owl", "crow"],
                       logit_scale=10.0)
    assert query(url, "select count(*) from file_labels where taxonomy like 'labels-%'") == [(2,)]


def test_a_failed_job_keeps_its_files_queued_until_it_is_reactivated(engine):
    url = engine.url.render_as_string(hide_password=False)
    job = _job(engine)
    add_files(engine, job, _refs("a", "b"))
    assert fail_job(engine, job, "model m: cannot load")
    assert not fail_job(engine, job, "again")  # failed once, with the first reason
    info = job_info(engine, job)
    assert (info.state, info.error, info.queued, info.failed) == (JobState.FAILED, "model m: cannot load", 2, 0)
    assert leases.claim(engine, job, ["file:///a/a"], "w:1:a", lease_s=60) == {}
    assert query(url, "select distinct status from file") == [("queued",)]
    reactivate_job(engine, job)
    assert leases.claim(engine, job, ["file:///a/a"], "w:1:a", lease_s=60) == {"file:///a/a": 0}
    assert job_info(engine, job).error is None


def test_cancel_counts_what_it_dropped_and_the_view_shows_it(engine):
    job = _job(engine)
    add_files(engine, job, _refs("a", "b", "c"))
    save_results(engine, job, [_ok("file:///a/a")], TAX.names, logit_scale=10.0)
    assert cancel_job(engine, job) == 2
    info = job_info(engine, job)
    assert (info.state, info.done, info.cancelled, info.queued, info.total) == (JobState.CANCELLED, 1, 2, 0, 3)
    finish_job_if_done(engine, job)  # a late batch cannot turn a cancelled job completed
    assert job_info(engine, job).state == JobState.CANCELLED


def test_fail_files_touches_only_its_own_job(engine):
    url = engine.url.render_as_string(hide_password=False)
    done_job = _job(engine)
    add_files(engine, done_job, _refs("a"))
    save_results(engine, done_job, [_ok("file:///a/a")], TAX.names, logit_scale=10.0)
    other = _job(engine, taxonomy_from_csv("owl"))
    add_files(engine, other, _refs("b"))
    fail_files(engine, other, ["file:///a/a", "file:///a/b"], "worker died 3 times")
    assert _statuses(engine, done_job) == {"file:///a/a": "done"}
    assert dict(query(url, "select uri, status from file")) == {"file:///a/a": "done", "file:///a/b": "failed"}


def test_jobs_view_rows_are_what_job_info_returns(engine):
    url = engine.url.render_as_string(hide_password=False)
    job = _job(engine)
    add_files(engine, job, _refs("a", "b"))
    row = query(url, f"select job_id, kind, state, total, done, failed, queued, taxonomy from jobs where job_id = '{job}'")
    info = job_info(engine, job)
    assert row == [(job, "run", "active", 2, 0, 0, 2, TAX.name)]
    assert (info.job_id, info.kind, info.state, info.total, info.queued, info.sources) == (job, "run", "active", 2, 2,
                                                                                           ["/a"])
    with pytest.raises(JobNotFound, match="^job nope: not found"):
        job_info(engine, "nope")


def test_label_embeddings_are_stored_per_model_revision_and_taxonomy(engine):
    taxonomy_id = save_taxonomy(engine, TAX)
    vectors = np.random.default_rng(0).standard_normal((2, 16)).astype(np.float32)
    assert label_embeddings(engine, "m", "r1", taxonomy_id) is None
    save_label_embeddings(engine, "m", "r1", taxonomy_id, vectors)
    save_label_embeddings(engine, "m", "r1", taxonomy_id, vectors)  # a second worker's copy: ignored
    np.testing.assert_array_equal(label_embeddings(engine, "m", "r1", taxonomy_id), vectors)
    assert label_embeddings(engine, "m", "r2", taxonomy_id) is None


def _labeled(engine, *names):
    job = _job(engine)
    ids = dict((uri, file_id) for file_id, uri in add_files(engine, job, _refs(*names)))
    save_results(engine, job, [_ok(uri) for uri in ids], TAX.names, logit_scale=10.0)
    return job, ids


def test_a_later_verdict_supersedes_and_undo_restores_the_one_before(engine):
    job, ids = _labeled(engine, "a", "b")
    a, b = ids["file:///a/a"], ids["file:///a/b"]
    assert model_decisions(engine, "m", job_spec(engine, job).taxonomy_id, [a, b]) == {a: "dog", b: "dog"}
    record_verdict(engine, job, a, Verdict.REJECT, "ana")
    record_verdict(engine, job, a, Verdict.CORRECT, "ana", "rain")
    record_verdict(engine, job, b, Verdict.ACCEPT, "ana")
    assert verdicts(engine, job) == {a: (Verdict.CORRECT, "rain"), b: (Verdict.ACCEPT, "dog")}

    assert undo_verdict(engine, job, "bo") is None  # only one's own verdicts
    assert undo_verdict(engine, job, "ana") == (b, None, None)
    assert undo_verdict(engine, job, "ana") == (a, None, None)
    assert verdicts(engine, job) == {a: (Verdict.REJECT, "dog")}
    url = engine.url.render_as_string(hide_password=False)
    history = query(url, "select uri, verdict, label, undone_at is not null, current from reviews order by reviewed_at")
    assert [tuple(row[1:]) for row in history] == [("reject", "dog", False, 1), ("correct", "rain", True, 0),
                                                    ("accept", "dog", True, 0)]
    final = {row.uri: (row.label, row.source) for row in query(url, "select uri, label, source from reviewed_labels")}
    assert final == {"file:///a/a": (None, "human"), "file:///a/b": ("dog", "model")}
    record_verdict(engine, job, b, Verdict.CORRECT, "ana", "rain")
    truths = {p.uri: p.truth for p in job_predictions(engine, job, reviewed=True)}
    assert truths == {"file:///a/a": None, "file:///a/b": "rain"}  # rejected: no truth


def test_segment_verdicts_keep_their_bounds_and_stand_apart_from_the_files(engine):
    job, ids = _labeled(engine, "a")
    a = ids["file:///a/a"]
    record_verdicts(engine, {job: [Given(a, Verdict.ACCEPT, "ana", "dog")]})
    record_verdicts(engine, {job: [Given(a, Verdict.ACCEPT, "ana", "dog", 0.0, 1.0),
                                   Given(a, Verdict.CORRECT, "ana", "rain", 0.0, 1.0),
                                   Given(a, Verdict.REJECT, "ana", "dog", 1.0, 2.0)]})
    assert verdicts(engine, job) == {a: (Verdict.ACCEPT, "dog")}  # the file's, untouched by its segments
    assert all_verdicts(engine, job) == {(a, None, None): (Verdict.ACCEPT, "dog"),
                                               (a, 0.0, 1.0): (Verdict.CORRECT, "rain"),
                                               (a, 1.0, 2.0): (Verdict.REJECT, "dog")}
    url = engine.url.render_as_string(hide_password=False)
    history = query(url, "select verdict, start_s, end_s, current from reviews order by reviewed_at, verdict")
    assert sorted((tuple(row) for row in history), key=repr) == sorted([
        ("accept", None, None, 1), ("accept", 0.0, 1.0, 0), ("correct", 0.0, 1.0, 1), ("reject", 1.0, 2.0, 1)], key=repr)
    final = query(url, "select start_s, end_s, label, source, decision, verdict from reviewed_labels order by start_s")
    assert sorted((tuple(row) for row in final), key=repr) == sorted([
        (None, None, "dog", "human", "dog", "accept"), (0.0, 1.0, "rain", "human", None, "correct"),
        (1.0, 2.0, None, "human", "dog", "reject")], key=repr)
    # evaluate and calibrate --truth reviews: the window a segment verdict covers is an entry of its own.
    record_verdicts(engine, {job: [Given(a, Verdict.ACCEPT, "ana", "dog", 0.0, 5.0)]})  # an event's
    predictions = {p.uri: p for p in job_predictions(engine, job, reviewed=True)}
    assert predictions["file:///a/a#0-1"].truth == "rain"  # the window's own verdict beats the event's around it
    assert (predictions["file:///a/a#0-1"].labels, predictions["file:///a/a#0-1"].decision) == (("dog", "rain"), "dog")
    assert predictions["file:///a/a"].truth == "dog"
    cosines = {uri: (truth, by_label) for uri, truth, by_label in job_cosines(engine, job, reviewed=True)}
    assert cosines["file:///a/a#0-1"] == ("rain", {"dog": pytest.approx(0.2), "rain": pytest.approx(0.1)})
    assert undo_verdict(engine, job, "ana") == (a, 0.0, 5.0)


def test_training_reads_every_verdict_in_force_each_at_its_own_bounds(engine):
    job, ids = _labeled(engine, "a")
    a = ids["file:///a/a"]
    record_verdicts(engine, {job: [Given(a, Verdict.ACCEPT, "ana", "dog", 0.0, 1.5),
                                   Given(a, Verdict.CORRECT, "ana", "rain", 1.5, 3.0)]})
    record_verdicts(engine, {job: [Given(a, Verdict.ACCEPT, "bo", "dog")]})
    given = {v.bounds: (v.verdict, v.label) for v in given_verdicts(engine, [a])}
    assert given == {(0.0, 1.5): (Verdict.ACCEPT, "dog"), (1.5, 3.0): (Verdict.CORRECT, "rain"),
                     None: (Verdict.ACCEPT, "dog")}
    record_verdicts(engine, {job: [Given(a, Verdict.REJECT, "ana", "dog", 0.0, 1.5)]})  # supersedes that window's only
    given = {v.bounds: (v.verdict, v.label) for v in given_verdicts(engine, [a])}
    assert given == {(0.0, 1.5): (Verdict.REJECT, "dog"), (1.5, 3.0): (Verdict.CORRECT, "rain"),
                     None: (Verdict.ACCEPT, "dog")}


def test_training_reads_the_consensus_where_several_judged(engine):
    """One vote settles alone; a split teaches nothing until an adjudicator settles it; a majority
    settles on its own latest verdict; an undone vote no longer counts."""
    job, ids = _labeled(engine, "a")
    a = ids["file:///a/a"]

    def taught():
        return {v.bounds: (v.verdict, v.label) for v in given_verdicts(engine, [a])}

    record_verdicts(engine, {job: [Given(a, Verdict.ACCEPT, "ana", "dog", 0.0, 1.5)]})
    record_verdicts(engine, {job: [Given(a, Verdict.CORRECT, "bo", "rain", 0.0, 1.5, shown="dog")]})
    assert taught() == {}
    settled = consensus(engine, job)[(a, 0.0, 1.5)]
    assert (settled.verdict, settled.label, settled.votes, settled.agreed, settled.adjudicated) == (
        None, None, 2, False, False)
    record_verdicts(engine, {job: [Given(a, Verdict.CORRECT, "cy", "rain", 0.0, 1.5, shown="dog")]})
    assert taught() == {(0.0, 1.5): (Verdict.CORRECT, "rain")}  # two of three
    assert consensus(engine, job)[(a, 0.0, 1.5)].votes == 3
    record_verdicts(engine, {job: [Given(a, Verdict.ACCEPT, "lead", "dog", 0.0, 1.5, adjudicated=True)]})
    assert taught() == {(0.0, 1.5): (Verdict.ACCEPT, "dog")}  # the adjudicator's, against the majority
    assert consensus(engine, job)[(a, 0.0, 1.5)].adjudicated
    assert undo_verdict(engine, job, "lead") == (a, 0.0, 1.5)
    assert taught() == {(0.0, 1.5): (Verdict.CORRECT, "rain")}
    assert undo_verdict(engine, job, "cy") == (a, 0.0, 1.5)
    assert taught() == {}
    with engine.connect() as conn:  # split again: the view shows the item, unsettled, and no human label
        assert conn.execute(text("select votes, agreed, verdict, label from consensus where start_s = 0")).one() == (
            2, False, None, None)
        assert conn.execute(text("select label from reviewed_labels where start_s = 0")).all() == []


def _two_windows(uri):
    """dog over the file and its first window, rain in its second."""
    dog, rain = np.array([0.2, 0.1]), np.array([0.1, 0.3])
    return FileResult(uri, scores=np.array([0.7, 0.3]), similarity=dog, duration_s=2.0,
                      segments=[WindowResult(0.0, 1.0, np.array([0.7, 0.3]), dog),
                                WindowResult(1.0, 2.0, np.array([0.2, 0.8]), rain)])


def test_a_correction_keeps_the_decision_the_person_was_shown_a_windows_own(engine):
    job = _job(engine)
    [(a, uri)] = add_files(engine, job, _refs("a"))
    save_results(engine, job, [_two_windows(uri)], TAX.names, logit_scale=10.0)
    record_verdict(engine, job, a, Verdict.CORRECT, "ana", "rain")
    record_verdicts(engine, {job: [Given(a, Verdict.CORRECT, "ana", "dog", 1.0, 2.0, shown="rain")]})
    given = {v.bounds: (v.label, v.shown) for v in given_verdicts(engine, [a])}
    assert given == {None: ("rain", "dog"), (1.0, 2.0): ("dog", "rain")}


def test_migration_0011_keeps_the_file_decision_a_correction_replaced(database_url):
    engine = engine_for(database_url)
    # Results as today's code writes them, then the schema taken back to before 0011 (its rows kept)
    # for verdicts as they were stored then.
    _at(engine, "head")
    job = _job(engine)
    [(a, uri)] = add_files(engine, job, _refs("a"))
    save_results(engine, job, [_two_windows(uri)], TAX.names, logit_scale=10.0)
    _down(engine, "0010")
    with engine.begin() as conn:
        for verdict, label, start, end in [("correct", "rain", None, None), ("correct", "dog", 1.0, 2.0),
                                           ("reject", "dog", 0.0, 1.0)]:
            conn.execute(text("insert into review (file_id, model, taxonomy_id, job_id, label, verdict, reviewer, "
                              "reviewed_at, start_s, end_s) select :f, model, taxonomy_id, id, :label, :verdict, "
                              "'ana', :t, :a, :b from job where id = :job"),
                         {"f": a, "label": label, "verdict": verdict, "t": NOW, "a": start, "b": end, "job": job})
    _at(engine, "0011")
    with engine.connect() as conn:
        shown = conn.execute(text("select verdict, start_s, shown from review order by id")).all()
    assert [tuple(row) for row in shown] == [("correct", None, "dog"), ("correct", 1.0, None), ("reject", 0.0, "dog")]
    engine_for.cache_clear()
    engine.dispose()


def test_a_persons_verdict_shows_in_every_job_over_the_file_whose_taxonomy_has_its_label(engine):
    first, ids = _labeled(engine, "a", "b", "c")
    a, b, c = ids["file:///a/a"], ids["file:///a/b"], ids["file:///a/c"]
    second = _job(engine, taxonomy_from_csv("rain,wind"), model="h")  # as `relabel --head` makes one
    add_files(engine, second, _refs("a", "b", "c"))
    save_results(engine, second, [_ok(uri) for uri in ids], ["rain", "wind"], logit_scale=10.0)
    record_verdict(engine, first, a, Verdict.CORRECT, "ana", "rain")
    record_verdict(engine, first, b, Verdict.ACCEPT, "ana")  # dog: no label of the second taxonomy
    record_verdicts(engine, {first: [Given(c, Verdict.REJECT, "ana", "rain"),  # about the first model only
                                     Given(a, Verdict.CORRECT, "ana", "rain", 0.0, 1.0, shown="dog")]})
    assert all_verdicts(engine, second) == {(a, None, None): (Verdict.CORRECT, "rain"),
                                            (a, 0.0, 1.0): (Verdict.CORRECT, "rain")}
    url = engine.url.render_as_string(hide_password=False)
    rows = query(url, f"select uri, start_s, label, source from reviewed_labels where run_id = '{second}'")
    assert sorted((tuple(row) for row in rows), key=repr) == sorted([
        ("file:///a/a", None, "rain", "human"), ("file:///a/a", 0.0, "rain", "human"),
        ("file:///a/b", None, "rain", "model"), ("file:///a/c", None, "rain", "model")], key=repr)
    exported = {f.uri: (f.label(reviewed=True), f.source) for files in labeled_files(engine, second) for f in files}
    assert exported == {"file:///a/a": ("rain", "human"), "file:///a/b": ("rain", "model"),
                        "file:///a/c": ("rain", "model")}
    # A verdict given in the second job supersedes the first's in both; undo takes back only one's own there.
    record_verdict(engine, second, a, Verdict.REJECT, "ana")
    assert verdicts(engine, first)[a] == (Verdict.CORRECT, "rain")  # a reject stays with the model it judged
    record_verdict(engine, second, a, Verdict.CORRECT, "ana", "wind")
    assert verdicts(engine, second)[a] == (Verdict.CORRECT, "wind")
    assert undo_verdict(engine, second, "ana") == (a, None, None)
    assert undo_verdict(engine, second, "ana") == (a, None, None)  # the reject
    assert undo_verdict(engine, second, "ana") is None  # the first job's verdicts are undone there
    assert verdicts(engine, second) == {a: (Verdict.CORRECT, "rain")}


def test_review_items_carry_decision_margin_and_windows(engine):
    job, ids = _labeled(engine, "a")
    [item] = review_items(engine, job)
    assert (item.uri, item.decision) == ("file:///a/a", "dog") and item.margin == pytest.approx(0.4)
    assert review_items(engine, job, label="rain") == []
    [window] = segments.job_windows(engine, job)
    assert (window.file_id, window.start_s, window.end_s, window.labels[0].label) == (ids["file:///a/a"], 0.0, 1.0, "dog")
    url = engine.url.render_as_string(hide_password=False)
    viewed = query(url, "select label, score from segment_labels order by rank")  # the scores as the view has them
    assert [(s.label, s.score) for s in window.labels] == [(label, pytest.approx(score)) for label, score in viewed]
    assert window.tags == {"dog": pytest.approx(0.7)}


def _at(engine, revision, step=None):
    from alembic import command

    from db.schema import _alembic_config

    config = _alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (step or command.upgrade)(config, revision)


def _down(engine, revision):
    from alembic import command

    _at(engine, revision, command.downgrade)


def _views(url):
    return (query(url, "select uri, run_id, model, taxonomy, taxonomy_hash, label, score, similarity, rank "
                       "from file_labels order by uri, rank"),
            query(url, "select uri, start_s, end_s, label, score, similarity, rank "
                       "from segment_labels order by uri, start_s, rank"),
            query(url, "select uri, label, decision, source from reviewed_labels order by uri"))


def test_migration_0006_converts_scores_and_the_views_answer_as_before(database_url):
    engine = engine_for(database_url)
    _at(engine, "0004")
    tax = taxonomy_from_csv("dog,rain,siren")
    with engine.begin() as conn:
        conn.execute(text("insert into taxonomy (id, name, content_hash, body, created_at) "
                          "values (1, :name, :hash, :body, :t)"),
                     {"name": tax.name, "hash": tax.content_hash, "body": json.dumps(tax.canonical()), "t": NOW})
        conn.execute(text("insert into job (id, kind, model, taxonomy_id, sources, options, state, created_at) "
                          "values ('j', 'run', 'm', 1, '[]', '{}', 'completed', :t)"), {"t": NOW})
        for fid in (1, 2):
            conn.execute(text("insert into file (id, uri, status, fingerprint, created_at, updated_at) "
                              "values (:id, :uri, 'done', 'f', :t, :t)"), {"id": fid, "uri": f"file:///{fid}", "t": NOW})
            conn.execute(text("insert into labeling (id, file_id, model, taxonomy_id, job_id, fingerprint, created_at) "
                              "values (:id, :id, 'm', 1, 'j', 'f', :t)"), {"id": fid, "t": NOW})
        # file 2 ties rain and siren: label order decides, rain first
        for lid, scores in {1: (0.5, 0.125, 0.375), 2: (0.25, 0.375, 0.375)}.items():
            ranks = np.argsort(-np.array(scores), kind="stable")
            for rank, i in enumerate(ranks, start=1):
                conn.execute(text("insert into label_score values (:l, :label, :s, :sim, :r)"),
                             {"l": lid, "label": tax.names[i], "s": scores[i], "sim": scores[i] / 4, "r": rank})
                for w in (0, 1):
                    conn.execute(text("insert into segment_score values (:l, :w, :label, :a, :b, :s, :sim, :r)"),
                                 {"l": lid, "w": w, "label": tax.names[i], "a": 10.0 * w, "b": 10.0 * w + 10,
                                  "s": scores[i], "sim": scores[i] / 4, "r": rank})
    before = _views(database_url)
    assert [r.label for r in before[0] if r.uri == "file:///2"] == ["rain", "siren", "dog"]
    _at(engine, "0006")
    after = _views(database_url)
    assert after == before  # every score above is exact in float4
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from segment")).scalar() == 4
        assert conn.execute(text("select top_label from labeling order by id")).scalars().all() == ["dog", "rain"]
    engine_for.cache_clear()
    engine.dispose()


def test_ranks_break_ties_by_label_order_and_the_top_columns_are_rank_1(engine):
    job = _job(engine, taxonomy_from_csv("dog,rain,siren"))
    add_files(engine, job, _refs("a", "b"))
    tied = np.array([0.25, 0.375, 0.375])
    results = [FileResult(f"file:///a/{name}", scores=tied, similarity=tied / 2, duration_s=2.0,
                          segments=[WindowResult(0.0, 1.0, tied, tied / 2), WindowResult(1.0, 2.0, tied[::-1], tied[::-1] / 2)])
               for name in ("a", "b")]
    save_results(engine, job, results, ["dog", "rain", "siren"], logit_scale=10.0)
    url = engine.url.render_as_string(hide_password=False)
    assert [r.label for r in query(url, "select label from file_labels where uri = 'file:///a/a' order by rank")] \
        == ["rain", "siren", "dog"]
    windows = query(url, "select start_s, label, rank, score from segment_labels where uri = 'file:///a/a' "
                         "order by start_s, rank")
    assert [(r.start_s, r.label, r.rank) for r in windows] == [
        (0.0, "rain", 1), (0.0, "siren", 2), (0.0, "dog", 3), (1.0, "dog", 1), (1.0, "rain", 2), (1.0, "siren", 3)]
    assert query(url, "select count(*) from segment_labels where rank = 1 and label = 'rain'")[0][0] == 2
    with engine.connect() as conn:
        tops = conn.execute(text("select s.top_label from segment s join labeling l on l.id = s.labeling_id "
                                 "order by l.file_id, s.\"window\"")).scalars().all()
    assert tops == ["rain", "dog", "rain", "dog"]
    predictions = job_predictions(engine, job, k=2)
    assert [(p.labels, p.decision, p.tags) for p in predictions] == [(("rain", "siren"), "rain", {"rain"})] * 2


def test_window_scores_in_the_view_are_the_softmax_the_labeling_gave(engine):
    job = _job(engine, taxonomy_from_csv("dog,rain,siren,wind"))
    add_files(engine, job, _refs("a"))
    scale, cosines = 100.0, np.array([[0.31, 0.12, 0.305, -0.05], [0.02, 0.25, 0.11, 0.249]])
    logits = scale * (cosines - cosines.max(axis=1, keepdims=True))
    scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    segments = [WindowResult(float(w), w + 1.0, scores[w], cosines[w]) for w in range(2)]
    save_results(engine, job, [FileResult("file:///a/a", scores=scores.mean(axis=0),
                                                similarity=cosines.mean(axis=0), duration_s=2.0, segments=segments)],
                       ["dog", "rain", "siren", "wind"], logit_scale=scale)
    rows = query(engine.url.render_as_string(hide_password=False),
                 "select start_s, label, score, similarity, rank from segment_labels order by start_s, rank")
    names = ["dog", "rain", "siren", "wind"]
    for row in rows:
        w, i = int(row.start_s), names.index(row.label)
        assert row.score == pytest.approx(scores[w, i], abs=1e-6)
        assert row.similarity == pytest.approx(cosines[w, i], abs=1e-7)
    assert [r.label for r in rows] == ["dog", "siren", "rain", "wind", "rain", "wind", "siren", "dog"]


def test_migration_0007_computes_window_scores_from_cosines_as_they_were_stored(database_url):
    engine = engine_for(database_url)
    _at(engine, "0006")
    from db.models import Doubles, Names, Reals

    tax = taxonomy_from_csv("dog,rain,siren,wind,owl")
    scale, rng = 100.0, np.random.default_rng(7)  # a trained CLAP's scale: its softmax is the sharpest
    taxonomy = sa.table("taxonomy", *(sa.column(c) for c in ("id", "name", "content_hash", "body", "created_at")),
                        sa.column("labels", Names))
    labeling = sa.table("labeling", *(sa.column(c) for c in (
        "id", "file_id", "model", "taxonomy_id", "job_id", "fingerprint", "created_at", "top_label", "top_score",
        "top_similarity")), sa.column("scores", Doubles), sa.column("similarities", Doubles))
    segment = sa.table("segment", *(sa.column(c) for c in (
        "labeling_id", "window", "start_s", "end_s", "top_label", "top_score", "top_similarity")),
        sa.column("scores", Reals), sa.column("similarities", Reals))
    with engine.begin() as conn:
        conn.execute(taxonomy.insert().values(id=1, name=tax.name, content_hash=tax.content_hash,
                                              body=json.dumps(tax.canonical()), created_at=NOW, labels=tax.names))
        conn.execute(text("insert into job (id, kind, model, taxonomy_id, sources, options, state, created_at) "
                          "values ('j', 'run', 'm', 1, '[]', '{}', 'completed', :t)"), {"t": NOW})
        for fid in (1, 2, 3):
            cosines = rng.normal(0.1, 0.12, (4, 5))  # as model/clap.score: float64, then float4 in segment
            logits = scale * (cosines - cosines.max(axis=1, keepdims=True))
            scores = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            conn.execute(text("insert into file (id, uri, status, fingerprint, created_at, updated_at) "
                              "values (:id, :uri, 'done', 'f', :t, :t)"),
                         {"id": fid, "uri": f"file:///{fid}", "t": NOW})
            best = int(scores.mean(axis=0).argmax())
            conn.execute(labeling.insert().values(
                id=fid, file_id=fid, model="m", taxonomy_id=1, job_id="j", fingerprint="f", created_at=NOW,
                top_label=tax.names[best], top_score=scores.mean(axis=0)[best],
                top_similarity=cosines.mean(axis=0)[best], scores=scores.mean(axis=0).tolist(),
                similarities=cosines.mean(axis=0).tolist()))
            for w in range(4):
                s32, c32 = scores[w].astype(np.float32), cosines[w].astype(np.float32)
                top = int(s32.argmax())
                conn.execute(segment.insert().values(
                    labeling_id=fid, window=w, start_s=10.0 * w, end_s=10.0 * w + 10, top_label=tax.names[top],
                    top_score=float(s32[top]), top_similarity=float(c32[top]), scores=s32.tolist(),
                    similarities=c32.tolist()))
    windows = ("select uri, start_s, end_s, label, score, similarity, rank from segment_labels "
               "order by uri, start_s, rank")
    before = query(database_url, windows)
    files_before = _views(database_url)[0]
    upgrade(engine)
    after = query(database_url, windows)
    assert [(r.uri, r.start_s, r.end_s, r.label, r.similarity, r.rank) for r in after] == \
        [(r.uri, r.start_s, r.end_s, r.label, r.similarity, r.rank) for r in before]
    assert max(abs(a.score - b.score) for a, b in zip(after, before)) <= 1e-6
    assert max(b.score for b in before if b.rank == 2) > 1e-3  # the scores compared are not all ~0 and 1
    assert _views(database_url)[0] == files_before
    with engine.connect() as conn:
        assert conn.execute(text("select logit_scale from labeling")).scalars().all() == pytest.approx([scale] * 3)
        assert "scores" not in {c["name"] for c in sa.inspect(conn).get_columns("segment")}
    engine_for.cache_clear()
    engine.dispose()


def test_a_relabel_jobs_roots_are_those_of_the_jobs_it_relabeled(engine):
    taxonomy = taxonomy_from_csv("a,b")
    settings = Settings(model="m")
    field = create_job(engine, taxonomy, settings, kind="run", sources=["/field", "s3://archive/dawn"])
    lab = create_job(engine, taxonomy, settings, kind="enqueue", sources=["/lab/one.wav"])
    of_field = create_job(engine, taxonomy, settings, kind="relabel", sources=[field])
    of_prefix = create_job(engine, taxonomy, settings, kind="relabel", sources=["file:///field/2024"])
    twice = create_job(engine, taxonomy, settings, kind="relabel", sources=[of_field])
    of_all = create_job(engine, taxonomy, settings, kind="relabel", sources=[])
    assert job_roots(engine, field) == ["/field", "s3://archive/dawn"]
    assert job_roots(engine, of_field) == job_roots(engine, twice) == ["/field", "s3://archive/dawn"]
    assert job_roots(engine, of_prefix) == ["file:///field/2024"]
    assert sorted(job_roots(engine, of_all)) == sorted(["/field", "s3://archive/dawn", "/lab/one.wav", "file:///field/2024"])


def test_a_run_with_another_model_or_taxonomy_labels_what_an_earlier_model_labeled(engine):
    first = _job(engine)
    add_files(engine, first, _refs("a"))
    save_results(engine, first, [_ok("file:///a/a")], TAX.names, logit_scale=10.0)
    finish_job_if_done(engine, first)
    assert add_files(engine, _job(engine), _refs("a")) == []  # the same model and taxonomy: skipped

    other_model = _job(engine, model="m2")
    assert [uri for _, uri in add_files(engine, other_model, _refs("a"))] == ["file:///a/a"]
    assert set(_statuses(engine, other_model).values()) == {FileState.QUEUED}
    other_taxonomy = _job(engine, taxonomy=taxonomy_from_csv("dog,rain,wind"))
    assert [uri for _, uri in add_files(engine, other_taxonomy, _refs("a"))] == ["file:///a/a"]
    taxonomy_id = job_spec(engine, first).taxonomy_id
    assert new_or_changed(engine, _refs("a"), "m", taxonomy_id) == ([], 0, 0)
    assert new_or_changed(engine, _refs("a"), "m3", taxonomy_id) == (_refs("a"), 1, 0)


def test_undo_takes_back_only_ones_own_latest_vote_on_the_same_file_or_segment(engine):
    job, ids = _labeled(engine, "a", "b")
    a, b = ids["file:///a/a"], ids["file:///a/b"]
    record_verdict(engine, job, a, Verdict.REJECT, "ana")
    record_verdict(engine, job, a, Verdict.ACCEPT, "bo")  # splits the file: no verdict in force
    record_verdicts(engine, {job: [Given(b, Verdict.ACCEPT, "ana", "dog", 0.0, 1.0)]})
    record_verdicts(engine, {job: [Given(b, Verdict.ACCEPT, "bo", "dog"), Given(b, Verdict.REJECT, "bo", "dog", 0.0, 2.0),
                                   Given(b, Verdict.REJECT, "bo", "dog", 0.5, 1.0)]})
    other = _job(engine, model="m2")  # another model's verdicts on the same files count for nothing here
    add_files(engine, other, _refs("a", "b"))
    record_verdicts(engine, {other: [Given(b, Verdict.REJECT, "cy", "dog", 0.0, 1.0)]})
    assert all_verdicts(engine, job) == {(b, None, None): (Verdict.ACCEPT, "dog"), (b, 0.0, 1.0): (Verdict.ACCEPT, "dog"),
                                         (b, 0.0, 2.0): (Verdict.REJECT, "dog"), (b, 0.5, 1.0): (Verdict.REJECT, "dog")}
    assert undo_verdict(engine, job, "ana") == (b, 0.0, 1.0)  # ana's latest
    assert (b, 0.0, 1.0) not in all_verdicts(engine, job)
    assert undo_verdict(engine, job, "ana") == (a, None, None)  # the vote that split the file
    assert all_verdicts(engine, job)[(a, None, None)] == (Verdict.ACCEPT, "dog")  # bo's alone settles it
    assert undo_verdict(engine, job, "ana") is None


def test_each_reviewers_vote_is_their_latest_verdict_not_undone_that_speaks_in_the_job(engine):
    """What agreement compares: per file and bounds, each person's latest vote there that was not
    undone; another model's reject says nothing here, its accept or correct with a label of the
    job's taxonomy does."""
    job, ids = _labeled(engine, "a", "b")
    a, b = ids["file:///a/a"], ids["file:///a/b"]
    other = _job(engine, model="m2")
    add_files(engine, other, _refs("a", "b"))
    elsewhere = _job(engine, taxonomy_from_csv("rain,wind"), model="h")
    add_files(engine, elsewhere, _refs("a", "b"))
    record_verdicts(engine, {job: [Given(a, Verdict.REJECT, "ana", "dog")]})
    record_verdicts(engine, {job: [Given(a, Verdict.CORRECT, "ana", "rain", shown="dog")]})
    record_verdicts(engine, {job: [Given(a, Verdict.ACCEPT, "ana", "dog", 0.0, 1.0)]})
    record_verdicts(engine, {job: [Given(a, Verdict.REJECT, "bo", "dog")]})
    record_verdicts(engine, {job: [Given(a, Verdict.ACCEPT, "bo", "dog")]})
    assert undo_verdict(engine, job, "bo") == (a, None, None)  # bo's reject counts again
    record_verdicts(engine, {job: [Given(b, Verdict.ACCEPT, "ana", "dog")]})
    record_verdicts(engine, {other: [Given(b, Verdict.REJECT, "ana", "dog"),  # another model's decision only
                                     Given(b, Verdict.REJECT, "cy", "dog"),
                                     Given(b, Verdict.CORRECT, "dy", "rain", shown="dog")]})
    record_verdicts(engine, {elsewhere: [Given(b, Verdict.CORRECT, "ed", "wind", shown="rain")]})  # not a label here
    same_model = _job(engine, taxonomy_from_csv("dog,wind"))
    add_files(engine, same_model, _refs("a", "b"))
    record_verdicts(engine, {same_model: [Given(b, Verdict.REJECT, "fy", "dog")]})  # that taxonomy's decision only
    # Segments that share a start or an end are apart all the same.
    record_verdicts(engine, {job: [Given(b, Verdict.ACCEPT, "ana", "dog", 0.0, 1.0)]})
    record_verdicts(engine, {job: [Given(b, Verdict.REJECT, "ana", "dog", 0.0, 2.0)]})
    record_verdicts(engine, {job: [Given(b, Verdict.ACCEPT, "ana", "dog", 0.5, 2.0)]})
    assert reviewer_votes(engine, job) == {(a, None, None): {"ana": "rain", "bo": None}, (a, 0.0, 1.0): {"ana": "dog"},
                                           (b, None, None): {"ana": "dog", "dy": "rain"}, (b, 0.0, 1.0): {"ana": "dog"},
                                           (b, 0.0, 2.0): {"ana": None}, (b, 0.5, 2.0): {"ana": "dog"}}


def test_verdict_counts_are_each_reviewers_verdicts_in_the_job_not_undone_since_a_time_and_in_all(engine, monkeypatch):
    job, ids = _labeled(engine, "a", "b")
    a, b = ids["file:///a/a"], ids["file:///a/b"]
    other, same_model = _job(engine, model="m2"), _job(engine, taxonomy_from_csv("dog,wind"))
    add_files(engine, other, _refs("a"))
    add_files(engine, same_model, _refs("a"))
    record_verdicts(engine, {job: [Given(a, Verdict.ACCEPT, "ana", "dog"), Given(b, Verdict.ACCEPT, "bo", "dog")]})
    record_verdicts(engine, {other: [Given(a, Verdict.ACCEPT, "ana", "dog")],  # another model's job
                             same_model: [Given(a, Verdict.ACCEPT, "ana", "dog")]})  # another taxonomy's
    record_verdicts(engine, {job: [Given(b, Verdict.REJECT, "ana", "dog", 0.0, 1.0), Given(a, Verdict.REJECT, "bo", "dog")]})
    with engine.connect() as conn:
        since = conn.execute(sa.select(sa.func.max(Review.reviewed_at))).scalar()
    since = since if since.tzinfo else since.replace(tzinfo=timezone.utc)  # SQLite's stamps come back naive, in UTC
    record_verdicts(engine, {job: [Given(b, Verdict.ACCEPT, "ana", "dog")]})
    assert undo_verdict(engine, job, "ana") == (b, None, None)
    assert verdict_counts(engine, job, since) == {"ana": (1, 2), "bo": (1, 2)}  # a verdict at `since` is recent
    assert verdict_counts(engine, job, since + timedelta(seconds=1)) == {"ana": (0, 2), "bo": (0, 2)}
    url = engine.url.render_as_string(hide_password=False)
    assert {row.run_id for row in query(url, "select run_id from reviews")} == {job, other, same_model}
    # `since` in any zone, on a machine in any zone, is the same moment.
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert verdict_counts(engine, job, since.astimezone(timezone(timedelta(hours=-7)))) == {"ana": (1, 2), "bo": (1, 2)}
    finally:
        monkeypatch.undo()
        time.tzset()


def test_review_items_are_each_labeled_file_by_id_with_its_duration_and_five_best_labels(engine):
    names = ["a", "b", "c", "d", "e", "f", "g"]
    job = _job(engine, taxonomy_from_csv(",".join(names)))
    ids = dict((uri, file_id) for file_id, uri in add_files(engine, job, _refs("y", "x")))
    scores = np.array([0.3, 0.25, 0.2, 0.1, 0.08, 0.05, 0.02])
    save_results(engine, job, [FileResult(uri, scores=scores, similarity=scores / 10, duration_s=4.0 + file_id)
                               for uri, file_id in ids.items()], names, logit_scale=10.0)
    items = review_items(engine, job)
    assert [item.file_id for item in items] == sorted(ids.values())
    assert [item.duration_s for item in items] == [4.0 + file_id for file_id in sorted(ids.values())]
    assert [(s.label, s.score, s.similarity) for s in items[0].labels] == [
        (name, pytest.approx(score), pytest.approx(score / 10)) for name, score in zip(names[:5], scores[:5])]


def test_an_undo_or_a_consensus_counts_only_the_verdicts_under_the_jobs_model_and_taxonomy(engine):
    job, ids = _labeled(engine, "a", "b")
    a, b = ids["file:///a/a"], ids["file:///a/b"]
    other_model, other_taxonomy = _job(engine, model="m2"), _job(engine, taxonomy_from_csv("rain,dog"))
    for other in (other_model, other_taxonomy):
        add_files(engine, other, _refs("a", "b"))
        save_results(engine, other, [_ok(uri) for uri in ids], job_spec(engine, other).taxonomy.names, logit_scale=10.0)
    record_verdicts(engine, {job: [Given(a, Verdict.ACCEPT, "ana", "dog")]})
    record_verdicts(engine, {other_model: [Given(b, Verdict.REJECT, "ana", "dog")]})
    record_verdicts(engine, {other_taxonomy: [Given(b, Verdict.REJECT, "ana", "rain", 0.0, 1.0)]})
    assert set(consensus(engine, job)) == {(a, None, None)}
    assert all_verdicts(engine, job) == {(a, None, None): (Verdict.ACCEPT, "dog")}  # in force: this job's only
    assert undo_verdict(engine, job, "ana") == (a, None, None)
    assert undo_verdict(engine, job, "ana") is None


def test_training_reads_each_verdict_once_at_home_with_its_id_file_and_the_decision_a_correction_replaced(
        engine, monkeypatch):
    """A correct given under one model speaks in another model's job of the same taxonomy too; once
    the person rejects at home, training reads the reject alone, not the correct still in force there."""
    job, ids = _labeled(engine, "a", "b", "c")
    a, b, c = ids["file:///a/a"], ids["file:///a/b"], ids["file:///a/c"]
    other_model, other_taxonomy = _job(engine, model="m2"), _job(engine, taxonomy_from_csv("rain,dog"))
    for other in (other_model, other_taxonomy):
        add_files(engine, other, _refs("a", "b", "c"))
        save_results(engine, other, [_ok(uri) for uri in ids], job_spec(engine, other).taxonomy.names, logit_scale=10.0)
    record_verdicts(engine, {job: [Given(a, Verdict.CORRECT, "ana", "rain", shown="dog")]})
    record_verdicts(engine, {job: [Given(a, Verdict.REJECT, "ana", "dog")]})
    record_verdicts(engine, {other_model: [Given(b, Verdict.ACCEPT, "bo", "dog")]})
    record_verdicts(engine, {job: [Given(c, Verdict.CORRECT, "cy", "rain", shown="dog")]})
    given = given_verdicts(engine, [a, b, c])
    assert [(v.file_id, v.verdict, v.label, v.shown) for v in given] == [
        (a, Verdict.REJECT, "dog", None), (b, Verdict.ACCEPT, "dog", None), (c, Verdict.CORRECT, "rain", "dog")]
    assert [v.review_id for v in given] == sorted(v.review_id for v in given) and given[0].review_id > 0
    real = sql_module.chunks
    monkeypatch.setattr(sql_module, "chunks", lambda items, size=None: real(items, 1))
    assert given_verdicts(engine, [a, b, c]) == given  # a large archive's files, a batch at a time


def test_a_windows_segment_verdict_is_the_narrowest_that_holds_it_bounds_included():
    from db.reviews import SLACK, SpanVerdict, covering

    wide, narrow, left = (SpanVerdict(0.0, 10.0, Verdict.ACCEPT, "dog"), SpanVerdict(4.5, 6.0, Verdict.REJECT, "dog"),
                          SpanVerdict(0.0, 4.0, Verdict.ACCEPT, "rain"))
    assert covering([wide, narrow, left], 4.5, 5.5) is narrow
    assert covering([left, wide], 4.5, 5.5) is wide  # left ends before the window does
    assert covering([left], 0.0, 4.0) is left and covering([left], 4.0, 6.0) is None
    # Bounds that went through a float's rounding, up to SLACK off, still touch.
    assert covering([narrow], 4.5 - SLACK, 6.0 + SLACK) is narrow


def _under(prefix, *names):
    return [FileRef(f"{prefix}{name}", fingerprint=f"{name}:1", size_bytes=len(name), truth=name.upper())
            for name in names]


def test_a_scope_is_the_jobs_files_or_those_under_a_source_or_every_labeled_file(engine):
    first = _job(engine)
    add_files(engine, first, _under("file:///a/", "x", "y"))
    save_results(engine, first, [_ok("file:///a/x"), FileResult("file:///a/y", error="corrupt")], TAX.names,
                 logit_scale=10.0)
    second = _job(engine)
    add_files(engine, second, _under("file:///a_b/", "z") + _under("file:///axb/", "w"))
    assert scope_files(engine, job_ids=[first]) == _under("file:///a/", "x", "y")
    assert scope_files(engine, job_ids=[first, second], sources=["file:///axb/"]) == (
        _under("file:///a/", "x", "y") + _under("file:///a_b/", "z") + _under("file:///axb/", "w"))
    # A source is a prefix as written: its '_' is no wildcard.
    assert scope_files(engine, sources=["file:///a_b/", "file:///a/x"]) == (
        _under("file:///a/", "x") + _under("file:///a_b/", "z"))
    assert scope_files(engine) == _under("file:///a/", "x")  # labeled: not failed, not still queued


def test_queued_uris_are_the_jobs_files_still_to_label_in_the_order_they_were_added(engine):
    job = _job(engine)
    add_files(engine, job, _refs("c", "a", "b"))
    add_files(engine, _job(engine, model="m2"), _refs("d"))
    save_results(engine, job, [_ok("file:///a/a")], TAX.names, logit_scale=10.0)
    assert queued_uris(engine, job) == ["file:///a/c", "file:///a/b"]


def test_job_file_ids_names_only_the_jobs_own_files(engine):
    job = _job(engine)
    (a_id, _), _ = add_files(engine, job, _refs("a", "b"))
    add_files(engine, _job(engine, model="m2"), _refs("c"))
    assert job_file_ids(engine, job, ["file:///a/a", "file:///a/c", "file:///a/nowhere"]) == {"file:///a/a": a_id}


def test_failed_uris_are_the_files_whose_latest_attempt_failed(engine):
    job = _job(engine)
    add_files(engine, job, _refs("a", "b", "c"))
    save_results(engine, job, [_ok("file:///a/a"), FileResult("file:///a/b", error="corrupt"),
                               FileResult("file:///a/c", error="corrupt")], TAX.names, logit_scale=10.0)
    add_files(engine, _job(engine), _refs("c", version="2"))  # changed since: to be tried again
    assert failed_uris(engine, ["file:///a/a", "file:///a/b", "file:///a/c", "file:///a/nowhere"]) == {"file:///a/b"}
    assert failed_uris(engine, ["file:///a/a", "file:///a/c"]) == set()  # b failed, but was not asked about


def test_a_jobs_labelings_are_those_of_its_model_and_taxonomy_whichever_job_made_them(engine):
    earlier = _job(engine)
    add_files(engine, earlier, _refs("a"))
    save_results(engine, earlier, [_ok("file:///a/a")], TAX.names, logit_scale=10.0)
    other_model = _job(engine, model="m2")
    add_files(engine, other_model, _refs("b"))
    save_results(engine, other_model, [_ok("file:///a/b")], TAX.names, logit_scale=10.0)
    other_taxonomy = _job(engine, taxonomy_from_csv("owl,crow"))
    add_files(engine, other_taxonomy, _refs("a"), force=True)
    save_results(engine, other_taxonomy, [_ok("file:///a/a")], ["owl", "crow"], logit_scale=10.0)
    elsewhere = _job(engine)  # labeled by the job's model and taxonomy, but not one of its files
    add_files(engine, elsewhere, _refs("c"))
    save_results(engine, elsewhere, [_ok("file:///a/c")], TAX.names, logit_scale=10.0)
    job = _job(engine)
    add_files(engine, job, _refs("a", "b"), force=True)
    spec = job_spec(engine, job)
    with engine.connect() as conn:
        labeled = conn.execute(job_labelings(job, spec, File.uri, Labeling.top_label)).all()
        every = conn.execute(job_labelings(job, spec, File.uri, Labeling.top_label, every_file=True)
                             .order_by(File.uri)).all()
    assert [tuple(row) for row in labeled] == [("file:///a/a", "dog")]
    assert [tuple(row) for row in every] == [("file:///a/a", "dog"), ("file:///a/b", None)]


def test_truths_durations_and_ids_are_read_for_the_files_that_have_them(engine):
    job = _job(engine)
    add_files(engine, job, _under("file:///a/", "x") + _refs("b", "c"))
    save_results(engine, job, [_ok("file:///a/b")], TAX.names, logit_scale=10.0)
    ids = file_ids(engine, ["file:///a/c", "file:///a/x", "file:///a/b", "file:///a/nowhere"])
    x, b, c = ids
    assert ids == sorted(ids) and len(ids) == 3
    assert files.truths(engine, ids) == {x: "X"}
    assert files.durations(engine, ids) == {b: 1.0}


def test_recordings_set_time_and_site_of_known_files_only_and_sources_are_every_jobs(engine):
    url = engine.url.render_as_string(hide_password=False)
    add_files(engine, _job(engine), _refs("a", "b"))
    create_job(engine, TAX, Settings(model="m"), kind="run", sources=["s3://x/", "/a"])
    when = datetime(2024, 5, 1, 6, 30, tzinfo=timezone.utc)
    before = dict(query(url, "select uri, updated_at from file"))
    assert files.set_recordings(engine, [("file:///a/a", when, "pond"), ("file:///a/nowhere", when, "x")]) == 1
    assert query(url, "select uri, site from file order by uri") == [("file:///a/a", "pond"), ("file:///a/b", None)]
    with engine.connect() as conn:
        (recorded,) = conn.execute(sa.select(File.recorded_at).where(File.uri == "file:///a/a")).one()
    assert recorded.replace(tzinfo=recorded.tzinfo or timezone.utc) == when
    after = dict(query(url, "select uri, updated_at from file"))
    assert after["file:///a/a"] != before["file:///a/a"] and after["file:///a/b"] == before["file:///a/b"]
    assert files.all_sources(engine) == ["/a", "s3://x/"]


def _file_rows(engine):
    url = engine.url.render_as_string(hide_password=False)
    return {uri: rest for uri, *rest in query(url, "select uri, fingerprint, size_bytes, truth, status, error from file")}


def test_a_file_seen_again_keeps_what_it_was_not_given_anew_and_its_failure_until_it_changes(engine):
    job = _job(engine)
    add_files(engine, job, [FileRef("file:///a/a", "a:1", size_bytes=5, truth="dog")])
    save_results(engine, job, [FileResult("file:///a/a", error="corrupt")], TAX.names, logit_scale=10.0)
    add_files(engine, _job(engine), [FileRef("file:///a/a", "a:1")])
    assert _file_rows(engine) == {"file:///a/a": ["a:1", 5, "dog", "failed", "corrupt"]}
    add_files(engine, _job(engine), [FileRef("file:///a/a", "a:2", size_bytes=7, truth="rain")])
    assert _file_rows(engine) == {"file:///a/a": ["a:2", 7, "rain", "queued", None]}


def test_failing_files_fails_only_the_named_files_still_queued_in_that_job(engine):
    url = engine.url.render_as_string(hide_password=False)
    job = _job(engine)
    add_files(engine, job, _refs("a", "b", "c", "d"))
    other = _job(engine, model="m2")
    add_files(engine, other, _refs("a"))
    save_results(engine, job, [_ok("file:///a/c")], TAX.names, logit_scale=10.0)
    before = query(url, "select max(updated_at) from file")[0][0]
    assert fail_files(engine, job, ["file:///a/a", "file:///a/c", "file:///a/nowhere"], "worker died 3 times") == 1
    assert _statuses(engine, job) == {"file:///a/a": "failed", "file:///a/b": "queued", "file:///a/c": "done",
                                      "file:///a/d": "queued"}
    assert _statuses(engine, other) == {"file:///a/a": "queued"}
    assert query(url, f"select error from job_file where job_id = '{job}' and status = 'failed'") == [
        ("worker died 3 times",)]
    (status, error, updated), = query(url, "select status, error, updated_at from file where uri = 'file:///a/a'")
    assert (status, error) == ("failed", "worker died 3 times") and str(updated) > str(before)


def test_new_or_changed_counts_and_leaves_out_what_an_active_job_of_the_model_has_queued(engine):
    earlier = _job(engine)  # stays active: a has its result here, b is still queued
    add_files(engine, earlier, _refs("a", "b"))
    save_results(engine, earlier, [_ok("file:///a/a")], TAX.names, logit_scale=10.0)
    add_files(engine, _job(engine, model="m2"), _refs("a", "c", version="2"))  # a changed since its result
    failed = _job(engine)  # its files stay queued, but nothing will label them until it is reactivated
    add_files(engine, failed, _refs("d"))
    fail_job(engine, failed, "model m: cannot load")
    owls = _job(engine, taxonomy=taxonomy_from_csv("owl,crow"))
    add_files(engine, owls, _refs("e", "h"))
    save_results(engine, owls, [_ok("file:///a/h")], ["owl", "crow"], logit_scale=10.0)
    add_files(engine, _job(engine, model="m3"), _refs("g"))
    refs = _refs("b") + _refs("a", "c", version="2") + _refs("d", "e", "h", "f") + _refs("g", version="2")
    taxonomy_id = job_spec(engine, earlier).taxonomy_id
    assert new_or_changed(engine, refs, "m", taxonomy_id) == (refs[1:], 6, 1)


def test_a_jobs_spec_is_what_it_was_created_with(engine):
    settings = Settings(model="m", window_s=5.0, hop_s=2.5, batch_size=3, queue="q", time_pattern="%Y%m%d_%H%M%S")
    plain = create_job(engine, TAX, settings, kind="run", sources=["/a", "s3://b/"])
    owls = taxonomy_from_csv("owl,crow")
    other = create_job(engine, owls, settings, kind="relabel", sources=[], queue="gpu", force=True, model="m2",
                       head="head:owls@v1")
    assert len(plain) == 12 and int(plain, 16) >= 0
    spec = job_spec(engine, plain)
    assert (spec.model, spec.taxonomy.names, spec.state, spec.sources) == ("m", TAX.names, JobState.ACTIVE,
                                                                           ("/a", "s3://b/"))
    assert spec.options == {"window_s": 5.0, "hop_s": 2.5, "batch_size": 3, "queue": "q", "force": False,
                            "time_pattern": "%Y%m%d_%H%M%S"}
    spec = job_spec(engine, other)
    assert (spec.model, spec.taxonomy.names, spec.sources) == ("m2", owls.names, ())
    assert spec.options == {"window_s": 5.0, "hop_s": 2.5, "batch_size": 3, "queue": "gpu", "force": True,
                            "head": "head:owls@v1", "time_pattern": "%Y%m%d_%H%M%S"}
    assert job_spec(engine, "nope") is None


def test_jobs_lists_the_newest_first_up_to_its_limit(engine):
    made = [_job(engine) for _ in range(21)]
    assert [info.job_id for info in jobs(engine, limit=2)] == made[:-3:-1]
    assert [info.job_id for info in jobs(engine)] == made[:0:-1]  # 20 by default


def test_state_changes_touch_only_their_own_job_and_say_whether_they_did(engine):
    url = engine.url.render_as_string(hide_password=False)
    bystander = _job(engine)
    add_files(engine, bystander, _refs("z"))
    done = _job(engine)
    add_files(engine, done, _refs("a"))
    assert not finish_job_if_done(engine, done)  # a still queued
    save_results(engine, done, [_ok("file:///a/a")], TAX.names, logit_scale=10.0)
    assert finish_job_if_done(engine, done) and not finish_job_if_done(engine, done)
    cancel_job(engine, done, reason="too late")  # a finished job stays as it ended
    broken = _job(engine)
    add_files(engine, broken, _refs("b"))
    assert fail_job(engine, broken, "model m: cannot load")
    stopped = _job(engine)
    add_files(engine, stopped, _refs("c"))
    stamped = f"select updated_at from job_file where job_id = '{stopped}'"
    added = query(url, stamped)
    cancel_job(engine, stopped, reason="interrupted")
    reactivate_job(engine, stopped)  # only a failed job comes back
    states = {job: (info.state, info.error, info.finished_at is not None)
              for job in (bystander, done, broken, stopped) for info in [job_info(engine, job)]}
    assert states == {bystander: (JobState.ACTIVE, None, False), done: (JobState.COMPLETED, None, True),
                      broken: (JobState.FAILED, "model m: cannot load", True),
                      stopped: (JobState.CANCELLED, "interrupted", True)}
    reactivate_job(engine, broken)
    assert (job_info(engine, broken).state, job_info(engine, broken).finished_at) == (JobState.ACTIVE, None)
    assert _statuses(engine, bystander) == {"file:///a/z": "queued"}
    assert str(query(url, stamped)) > str(added)  # the cancelled file says when


def test_reads_and_writes_over_many_uris_answer_the_same_in_batches_of_one(engine, monkeypatch):
    """Large archives go through the database in batches (db.sql.chunks): every batch counts."""
    job = _job(engine)
    add_files(engine, job, _refs("a", "b", "c"))
    save_results(engine, job, [_ok("file:///a/a"), FileResult("file:///a/b", error="corrupt"),
                               FileResult("file:///a/c", error="corrupt")], TAX.names, logit_scale=10.0)
    real = files.sql.chunks
    monkeypatch.setattr(files.sql, "chunks", lambda items, size=None: real(items, 1))
    uris = ["file:///a/a", "file:///a/b", "file:///a/c"]
    ids = file_ids(engine, uris)
    assert len(ids) == 3
    assert failed_uris(engine, uris) == {"file:///a/b", "file:///a/c"}
    assert files.durations(engine, ids) == {ids[0]: 1.0}
    assert files.durations(engine, ids[1:]) == {}  # a's duration, but a was not asked about
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    assert files.set_recordings(engine, [(uri, when, "pond") for uri in uris]) == 3
    taxonomy_id = job_spec(engine, job).taxonomy_id
    changed = _refs("a", "b", version="2") + _refs("d")
    assert new_or_changed(engine, changed, "m", taxonomy_id) == (changed, 1, 2)


def test_failing_files_stamps_when_they_failed(engine):
    url = engine.url.render_as_string(hide_password=False)
    job = _job(engine)
    add_files(engine, job, _refs("a"))
    stamps = "select f.updated_at, j.updated_at from file f join job_file j on j.file_id = f.id"
    (before,) = query(url, stamps)
    time.sleep(0.01)
    assert fail_files(engine, job, ["file:///a/a"], "worker died 3 times") == 1
    (after,) = query(url, stamps)
    assert after[0] > before[0] and after[1] > before[1]  # the file's and the job's row: when it failed
