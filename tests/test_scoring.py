"""Scoring without a model: model/classifier.py's ``score``, model/results.py's ``aggregate`` and
vectors/stored.py's results from stored windows, on vectors whose answers are known by hand."""

from __future__ import annotations

import numpy as np
import pytest

from db.embeddings import StoredEmbeddings, Unreadable
from model.classifier import score
from model.results import FileResult, WindowResult, aggregate
from soundtag.states import Failure
from vectors.stored import results_from_stored, stored_from, zero_shot

LABELS = np.array([[1.0, 0.0], [0.0, 1.0]])


def test_scores_are_a_softmax_at_the_models_scale_of_the_cosines():
    audio = np.array([[1.0, 0.0], [0.6, 0.8]], np.float32)
    scores, similarity = score(audio, LABELS, logit_scale=10.0)
    assert similarity == pytest.approx(np.array([[1.0, 0.0], [0.6, 0.8]]))
    # softmax(10 * [1, 0]): e^10 / (e^10 + 1)
    assert scores[0] == pytest.approx([np.exp(10) / (np.exp(10) + 1), 1 / (np.exp(10) + 1)])
    assert scores[1] == pytest.approx([1 / (1 + np.exp(2)), np.exp(2) / (1 + np.exp(2))])
    assert scores.sum(axis=1) == pytest.approx([1.0, 1.0])


def test_large_scales_do_not_overflow_the_softmax_of_any_window():
    scores, _ = score(np.array([[1.0, 0.0], [-1.0, 0.0]]), LABELS, logit_scale=1000.0)
    assert np.isfinite(scores).all() and scores == pytest.approx(np.array([[1.0, 0.0], [0.0, 1.0]]))


def test_a_files_result_is_the_mean_of_its_own_windows_only():
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6], [0.9, 0.1]])
    file_scores, file_similarity = aggregate(scores, -scores, [2, 1, 3])
    assert file_scores == pytest.approx(np.full((3, 2), 0.5))
    assert file_similarity[2] == pytest.approx([-0.5, -0.5])
    file_scores, _ = aggregate(scores[:4], scores[:4], [1, 3])
    assert file_scores == pytest.approx(np.array([[1.0, 0.0], [0.7 / 3, 2.3 / 3]]))


def _stored(uri, starts, vectors):
    starts = np.array(starts, float)
    return StoredEmbeddings(7, uri, starts, starts + 10, np.array(vectors, np.float32), 42.0, 48000, 2, "h-" + uri)


def test_stored_windows_score_as_the_pipeline_would_and_keep_the_files_metadata():
    a = _stored("a.wav", [0, 5], [[1.0, 0.0], [0.0, 1.0]])
    b = _stored("b.wav", [0], [[0.6, 0.8]])
    d = _stored("d.wav", [0, 3], [[0.0, 1.0], [0.0, 1.0]])
    damaged = Unreadable(8, "c.wav", "c.wav: stored embeddings are damaged")
    results = results_from_stored([a, damaged, b, d], zero_shot(LABELS, 10.0))
    assert [r.uri for r in results] == ["a.wav", "b.wav", "d.wav", "c.wav"]
    ra, rb, rd, rc = results
    assert [s.similarity.tolist() for s in rd.segments] == [[0.0, 1.0], [0.0, 1.0]]
    assert (ra.duration_s, ra.sample_rate, ra.channels, ra.content_hash) == (42.0, 48000, 2, "h-a.wav")
    assert [(s.start_s, s.end_s) for s in ra.segments] == [(0.0, 10.0), (5.0, 15.0)]
    assert ra.segments[1].similarity.tolist() == pytest.approx([0.0, 1.0])
    assert ra.similarity.tolist() == pytest.approx([0.5, 0.5])
    expected, _ = score(np.array([[0.6, 0.8]]), LABELS, 10.0)
    assert rb.scores == pytest.approx(expected[0]) and rb.segments[0].scores == pytest.approx(expected[0])
    assert len(rb.segments) == 1 and rb.similarity == pytest.approx([0.6, 0.8])
    assert (rc.ok, rc.error, rc.failure) == (False, "c.wav: stored embeddings are damaged", Failure.UNREADABLE)


def test_only_damaged_rows_give_only_failures():
    damaged = Unreadable(8, "c.wav", "why")
    assert [(r.uri, r.error) for r in results_from_stored([damaged], zero_shot(LABELS, 1.0))] == [("c.wav", "why")]


def test_a_labeled_files_windows_become_stored_embeddings_only_when_every_window_has_one():
    vec = np.array([0.6, 0.8], np.float32)
    window = WindowResult(0.0, 10.0, np.zeros(2), np.zeros(2), vec)
    result = FileResult("a.wav", duration_s=12.0, sample_rate=16000, channels=1, content_hash="h",
                        segments=[window, WindowResult(2.0, 12.0, np.zeros(2), np.zeros(2), vec * 0)])
    stored = stored_from(result)
    assert (stored.uri, stored.duration_s, stored.sample_rate, stored.channels, stored.content_hash) == (
        "a.wav", 12.0, 16000, 1, "h")
    assert stored.starts.tolist() == [0.0, 2.0] and stored.ends.tolist() == [10.0, 12.0]
    assert stored.vectors.dtype == np.float32 and stored.vectors == pytest.approx(np.array([[0.6, 0.8], [0, 0]]))
    result.segments.append(WindowResult(4.0, 14.0, np.zeros(2), np.zeros(2)))
    assert stored_from(result) is None
    assert stored_from(FileResult("empty.wav")) is None
