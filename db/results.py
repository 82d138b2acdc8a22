"""Results: a batch of FileResults stored in one transaction (labeling, windows, embeddings),
and the ranks of a result's scores as the views make them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import BigInteger, DateTime, Engine, Float, Integer, Text, delete, func, literal, select, true, update
from sqlalchemy.dialects.postgresql import REAL

from db import leases, sql
from db.embeddings import EmbeddingKey, embedding_row
from db.models import AudioEmbedding, File, Job, JobFile, Labeling, LabelingWindow, now
from soundtag.states import FileState


def _save_windows(engine: Engine, conn, labeling_ids: list[int], done: Sequence, labels: Sequence[str]) -> None:
    """The segment rows of these results' windows: their cosines in float4, as the table keeps
    them, and the rank-1 label taken from those (the first of equal best ones), so that the
    views' rank-1 row is the best of what is stored."""
    counts = [len(r.segments) for r in done]
    segments = [seg for r in done for seg in r.segments]
    if not segments:
        return
    cosines = np.array([seg.similarity for seg in segments], dtype=np.float32)
    best = cosines.argmax(axis=1)
    picked = np.arange(len(segments))
    top_scores = np.array([seg.scores for seg in segments], dtype=np.float64)[picked, best].astype(np.float32)
    owners = np.repeat(labeling_ids, counts)
    windows = picked - np.repeat(np.cumsum(counts) - counts, counts)
    rows = list(zip(owners.tolist(), windows.tolist(), [seg.start_s for seg in segments],
                    [seg.end_s for seg in segments], [labels[b] for b in best.tolist()], top_scores.tolist(),
                    cosines[picked, best].tolist()))
    for start in range(0, len(rows), 20_000):
        part = sql.relation(engine, "windows", {
            "labeling_id": BigInteger(), "window": Integer(), "start_s": Float(), "end_s": Float(),
            "top_label": Text(), "top_score": Float(), "top_similarity": Float()}, rows[start:start + 20_000],
            arrays={"similarities": (REAL(), cosines[start:start + 20_000])})
        conn.execute(sql.insert(engine, LabelingWindow).from_select(
            ["labeling_id", "window", "start_s", "end_s", "top_label", "top_score", "top_similarity", "similarities"],
            select(*part.c)))


def save_results(engine: Engine, job_id: str, results: Sequence, labels: Sequence[str],
                 embeddings: EmbeddingKey | None = None, *, logit_scale: float | None,
                 labeling: tuple[str, int] | None = None, holder: str | None = None) -> list[str]:
    """Store a batch of FileResults (worker.labeling) of one job in one transaction, a few
    set-based statements whatever the batch's size. A failed file keeps the results earlier jobs
    gave it; its row says the latest attempt failed. ``logit_scale`` is the model's (its
    exp(logit_scale_a)), from which the views compute window scores; None for a head's results,
    whose window scores are their stored probabilities. With ``embeddings``, the windows' audio
    embeddings are kept too (replacing those of the same key). ``labeling`` (model, taxonomy id)
    files the scores, and the embeddings, under that model and taxonomy; by default the job's,
    read here. With ``holder``, a worker's lease name, only the files it still holds are
    written (db/leases.py ``held``). Returns the URIs of the results dropped so."""
    if not results:
        return []
    stamp = now()
    results = list({r.uri: r for r in results}.values())
    with engine.begin() as conn:
        model, taxonomy_id = labeling or conn.execute(
            select(Job.model, Job.taxonomy_id).where(Job.id == job_id)).one()
        files = conn.execute(select(File.uri, File.id, File.fingerprint)
                             .where(sql.among(engine, "uris", File.uri, Text(), [r.uri for r in results]))).all()
        ids = {uri: file_id for uri, file_id, _ in files}
        fingerprints = {file_id: fingerprint for _, file_id, fingerprint in files}
        dropped = []
        if holder is not None:
            holding = leases.held(conn, job_id, list(ids.values()), holder)
            dropped = [r.uri for r in results if ids[r.uri] not in holding]
            results = [r for r in results if ids[r.uri] in holding]
            if not results:
                return dropped
        outcome = sql.relation(engine, "outcome", {
            "file_id": BigInteger(), "status": Text(), "error": Text(), "duration_s": Float(),
            "sample_rate": Integer(), "channels": Integer(), "content_hash": Text(),
            "recorded_at": DateTime(timezone=True), "site": Text()},
            [(ids[r.uri], FileState.DONE if r.ok else FileState.FAILED, r.error, r.duration_s, r.sample_rate,
              r.channels, r.content_hash, r.recorded_at, r.site) for r in results])
        # A result from stored embeddings read no header: the time and site read before stay.
        conn.execute(update(File).where(File.id == outcome.c.file_id).values(
            status=outcome.c.status, error=outcome.c.error, duration_s=outcome.c.duration_s,
            sample_rate=outcome.c.sample_rate, channels=outcome.c.channels, content_hash=outcome.c.content_hash,
            recorded_at=func.coalesce(outcome.c.recorded_at, File.recorded_at),
            site=func.coalesce(outcome.c.site, File.site), updated_at=stamp))
        conn.execute(update(JobFile).where(JobFile.job_id == job_id, JobFile.file_id == outcome.c.file_id)
                     .values(status=outcome.c.status, error=outcome.c.error, updated_at=stamp))
        done = [r for r in results if r.ok]
        if not done:
            return dropped
        file_ids = [ids[r.uri] for r in done]
        scores = np.array([r.scores for r in done], dtype=np.float64)
        cosines = np.array([r.similarity for r in done], dtype=np.float64)
        # Rank 1 is the first of equal best scores in label order, as in ``best``.
        best = scores.argmax(axis=1)
        labeled = sql.relation(engine, "labeled", {
            "file_id": BigInteger(), "fingerprint": Text(), "content_hash": Text(), "top_label": Text(),
            "top_score": Float(), "top_similarity": Float()},
            [(file_id, fingerprints[file_id], r.content_hash, labels[b], s, c) for file_id, r, b, s, c in zip(
                file_ids, done, best.tolist(), scores[np.arange(len(done)), best].tolist(),
                cosines[np.arange(len(done)), best].tolist())],
            arrays={"scores": (Float(), scores), "similarities": (Float(), cosines)})
        stmt = sql.insert(engine, Labeling).from_select(
            ["file_id", "model", "taxonomy_id", "job_id", "fingerprint", "content_hash", "created_at", "top_label",
             "top_score", "top_similarity", "scores", "similarities", "logit_scale"],
            select(labeled.c.file_id, literal(model, Text()), literal(taxonomy_id, BigInteger()),
                   literal(job_id, Text()), labeled.c.fingerprint, labeled.c.content_hash,
                   literal(stamp, DateTime(timezone=True)), labeled.c.top_label, labeled.c.top_score,
                   labeled.c.top_similarity, labeled.c.scores, labeled.c.similarities,
                   literal(None if logit_scale is None else float(logit_scale), Float())).where(true()))
        # The upsert takes the row locks, so two deliveries of one file serialise here and the
        # second replaces the first's windows instead of interleaving with them.
        stmt = stmt.on_conflict_do_update(index_elements=["file_id", "model", "taxonomy_id"], set_={
            name: stmt.excluded[name] for name in (
                "job_id", "fingerprint", "content_hash", "created_at", "top_label", "top_score", "top_similarity",
                "scores", "similarities", "logit_scale")}).returning(Labeling.file_id, Labeling.id)
        labeling_ids = dict(conn.execute(stmt).all())
        conn.execute(delete(LabelingWindow).where(
            sql.among(engine, "labelings", LabelingWindow.labeling_id, BigInteger(), list(labeling_ids.values()))))
        _save_windows(engine, conn, [labeling_ids[file_id] for file_id in file_ids], done, labels)
        kept = []
        for r in done if embeddings else ():
            row = embedding_row(embeddings, r.segments)
            if row is not None:
                kept.append({"file_id": ids[r.uri], "model": model, "fingerprint": fingerprints[ids[r.uri]],
                             "created_at": stamp, **row})
        if kept:
            stmt = sql.insert(engine, AudioEmbedding)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["file_id", "model", "model_revision", "window_s", "hop_s"],
                set_={k: stmt.excluded[k] for k in ("fingerprint", "dtype", "dim", "starts", "ends", "vectors",
                                                    "created_at")}), kept)
    return dropped


def best(scores: Sequence[float], k: int) -> list[int]:
    """Positions of the ``k`` best of a result's scores, ties by label order (the views' ranks)."""
    return [int(i) for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")[:k]]
