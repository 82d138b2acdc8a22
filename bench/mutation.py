"""Mutation testing of the core, one module at a time, with mutmut 3: each module is mutated
against the fast tests that cover it, in its own copy of the tree (``mutants/<module>/``), and
the score table is printed. A developers' tool, not part of CI (``pip install -e ".[mutation]"``).

    python bench/mutation.py                      # every module, one after the other
    python bench/mutation.py --module calibration --module packing
    python bench/mutation.py --list               # the modules, their files and tests

Each run starts the module over (mutmut keeps a survivor's verdict after the tests change); the
last run's results stay in ``mutants/<module>/`` for ``--report``. A survivor that no test can kill (it changes nothing a
user can observe) is recorded in EQUIVALENT with the reason; the table counts it apart."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("soundtag", "db", "model", "heads", "vectors", "worker", "producer", "review")


@dataclass(frozen=True)
class Module:
    files: tuple[str, ...]
    tests: tuple[str, ...]
    # Mutant names to run (mutmut's globs: module.x_function__mutmut_*, module.xǁClassǁmethod__mutmut_*);
    # empty: every function of the files. Where a file holds more than the concept (the model
    # loading beside ``score``), the rest is another module's or needs the real model.
    only: tuple[str, ...] = ()
    # pytest's -k over those files: the tests of this module only, and on SQLite alone where a
    # test runs on both (the SQL is SQLAlchemy's for either dialect; PostgreSQL doubles the time).
    select: str = ""


MODULES = {
    "calibration": Module(("soundtag/calibration.py",), ("tests/test_calibration.py",)),
    "packing": Module(("db/packing.py",), ("tests/test_packing.py",)),
    "scoring": Module(("model/classifier.py", "model/results.py", "vectors/stored.py"),
                      ("tests/test_scoring.py",),
                      ("model.classifier.x_score__mutmut_*", "model.results.x_aggregate__mutmut_*",
                       "vectors.stored.x_zero_shot__mutmut_*", "vectors.stored.x_results_from_stored__mutmut_*",
                       "vectors.stored.x_stored_from__mutmut_*")),
    "audio": Module(("soundtag/audio.py",), ("tests/test_audio.py",),
                    ("soundtag.audio.x_windows__mutmut_*", "soundtag.audio.xǁWindowerǁ*",
                     "soundtag.audio.x_resample__mutmut_*")),
    "taxonomy": Module(("soundtag/taxonomy.py",), ("tests/test_taxonomy.py",)),
    "training": Module(("heads/training.py", "heads/targets.py"), ("tests/test_training.py", "tests/test_targets.py")),
    "decisions": Module(("db/decisions.py",), ("tests/test_decisions.py",), select="decisions_and_tags and sqlite"),
    "files": Module(("db/files.py", "db/jobs.py"), ("tests/test_db.py",), select=(
        "sqlite and (queued or skips or changed or erases or failed_job or cancel or fail_files or another_model "
        "or jobs_view or scope or job_file_ids or failed_uris or labelings or truths_durations or recordings_set "
        "or seen_again or failing_files or new_or_changed or spec_is or newest_first or state_changes or roots or batches_of_one)")),
    "reviews": Module(("db/reviews.py",), ("tests/test_db.py", "tests/test_review_order.py", "tests/test_team_progress.py"),
                      select=("not postgresql and (test_review_order.py or narrowest or verdict or review_items "
                              "or undo or consensus or progress or adjudication or correction)")),
    "leases": Module(("db/leases.py",), ("tests/test_leases.py",), select="sqlite"),
    "order": Module(("review/order.py",), ("tests/test_review_order.py",)),
    "embeddings": Module(("db/embeddings.py",), ("tests/test_embeddings.py",), select="not postgresql"),
    "window_index": Module(("vectors/window_index.py", "vectors/index_segment.py", "vectors/approximate_index.py"),
                           ("tests/test_window_index.py", "tests/test_index_segment.py",
                            "tests/test_approximate_index.py", "tests/test_search.py"), select=(
        "not postgresql and (test_window_index.py or test_index_segment.py or test_approximate_index.py "
        "or index_follows or relabeled_file or deleted_files or query_answers or damaged or wrong_type "
        "or replaced_behind or approximate_search or built_ahead)")),
}

# Survivors that change nothing a user can observe, by module, keyed by "function: -line / +line"
# (the mutant's diff, which survives renumbering), with the reason.
EQUIVALENT: dict[str, dict[str, str]] = {
    "training": {
        '_fit_one: -if len(weak) > MAX_WEAK: / +if len(weak) >= MAX_WEAK:':
            'drawing all of exactly MAX_WEAK weak negatives without replacement, sorted, keeps every one',
        '_fit_one: -keep = np.sort(np.random.default_rng(seed).choice(weak, MAX_WEAK, replace=False)) / +keep = np.sort(np.random.default_rng(seed).choice(weak, MAX_WEAK, replace=None))':
            'replace=None is falsy: the draw is without replacement either way',
        '_fit_one: -model = LogisticRegression(C=REGULARISATION, max_iter=500) / +model = LogisticRegression(max_iter=500)':
            "scikit-learn's default C is 1.0, REGULARISATION's value",
        '_fit_one: -model = LogisticRegression(C=REGULARISATION, max_iter=500) / +model = LogisticRegression(C=REGULARISATION, max_iter=501)':
            'lbfgs stops when it converges, long before 500 iterations or 501',
        '_fit_one: -model.fit((vectors - mean) / scale, np.nan_to_num(target, nan=0.0).astype(int), / +model.fit((vectors - mean) / scale, np.nan_to_num(target, nan=0.0).astype(None),':
            'targets as floats 0.0 and 1.0 are the same two classes',
        '_fit_one: -model.fit((vectors - mean) / scale, np.nan_to_num(target, nan=0.0).astype(int), / +model.fit((vectors - mean) / scale, np.nan_to_num(target, ).astype(int),':
            "nan_to_num's default for NaN is 0.0",
        '_probabilities: -return 1.0 / (1.0 + np.exp(-(vectors.astype(np.float64) @ weights + bias))) / +return 1.0 / (1.0 + np.exp(-(vectors.astype(None) @ weights + bias)))':
            "numpy's astype(None) is float64",
        '_cross_validated: -head = np.full(len(target), np.nan) / +head = np.full(len(target), None)':
            'held-out probabilities in an object array compare and score as the same floats',
        '_cross_validated: -for _, test in split.split(strong, target[strong].astype(int), examples.files[strong]): / +for _, test in split.split(strong, target[strong].astype(None), examples.files[strong]):':
            'stratifying by 0.0 and 1.0 is stratifying by 0 and 1',
        '_cross_validated: -found = {key: round(value, 4) for key, value in _scores(truth, head[held], head[held] >= 0.5).items()} / +found = {key: round(value, 4) for key, value in _scores(truth, head[held], head[held] > 0.5).items()}':
            'a probability of exactly 0.5 from a fitted regression does not occur',
    },
    "order": {
        'ordered: -def ordered(items: Sequence[ReviewItem], order: Order, seed: str = "", / +def ordered(items: Sequence[ReviewItem], order: Order, seed: str = "XXXX",':
            'the default seed is a fixed string either way: the order is as stable',
        'k_centre: -def k_centre(vectors: np.ndarray, picks: int, seed: str = "", known: np.ndarray | None = None) -> list[int]: / +def k_centre(vectors: np.ndarray, picks: int, seed: str = "XXXX", known: np.ndarray | None = None) -> list[int]:':
            'the default seed is a fixed string either way: the order is as stable',
        'k_centre: -vectors = np.asarray(vectors, dtype=np.float64) / +vectors = np.asarray(vectors, dtype=None)':
            "numpy's dtype=None keeps the float rows as they are: distances alike",
        'k_centre: -vectors = np.asarray(vectors, dtype=np.float64) / +vectors = np.asarray(vectors, )':
            "numpy's dtype=None keeps the float rows as they are: distances alike",
        'k_centre: -nearest[taken] = -1.0 / +nearest[taken] = -2.0':
            'any negative marks a taken row: distances are never below 0',
        'boundary_distance: -p = np.sort(np.asarray(probabilities, dtype=np.float64))[::-1] / +p = np.sort(np.asarray(probabilities, dtype=None))[::-1]':
            'probabilities are floats already: sorting and subtracting alike',
        'boundary_distance: -p = np.sort(np.asarray(probabilities, dtype=np.float64))[::-1] / +p = np.sort(np.asarray(probabilities, ))[::-1]':
            'probabilities are floats already: sorting and subtracting alike',
        '_learn: -known = np.array(learning.known) if learning.known else None / +known = np.array(learning.known) if (learning.known) or True else None':
            'an empty known array has no centre to iterate over, as None has none',
    },
    "audio": {
        'resample: -return soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False) / +return soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32, copy=None)':
            'whether astype copies changes memory, not the samples',
        'resample: -return soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False) / +return soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32, )':
            'whether astype copies changes memory, not the samples',
        'resample: -return soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False) / +return soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32, copy=True)':
            'whether astype copies changes memory, not the samples',
        'resample: -return soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False) / +return soxr.resample(samples, source_rate, target_rate, ).astype(np.float32, copy=False)':
            "soxr's default quality is HQ",
        'resample: -return soxr.resample(samples, source_rate, target_rate, quality="HQ").astype(np.float32, copy=False) / +return soxr.resample(samples, source_rate, target_rate, quality="hq").astype(np.float32, copy=False)':
            'soxr reads its quality names whatever their case',
        'windows: -if total <= size: / +if total < size:':
            'a clip of exactly one window is the same one window either way',
        'Windower.push: -if self._next + self.size > self._total: / +if self._next - self.size > self._total:':
            'an early return that saves a join: without it the loop cuts nothing either',
        'Windower._join: -if len(self._held) > 1: / +if len(self._held) >= 1:':
            'concatenating one block copies the same samples',
        'Windower._join: -return self._held[0] if self._held else np.zeros(0, np.float32) / +return self._held[0] if (self._held) or True else np.zeros(0, np.float32)':
            '_join runs only after a push or with samples held: nothing held never reaches it',
        'Windower._join: -return self._held[0] if self._held else np.zeros(0, np.float32) / +return self._held[0] if self._held else np.zeros(None, np.float32)':
            '_join runs only after a push or with samples held: nothing held never reaches it',
        'Windower._join: -return self._held[0] if self._held else np.zeros(0, np.float32) / +return self._held[0] if self._held else np.zeros(0, None)':
            '_join runs only after a push or with samples held: nothing held never reaches it',
        'Windower._join: -return self._held[0] if self._held else np.zeros(0, np.float32) / +return self._held[0] if self._held else np.zeros(np.float32)':
            '_join runs only after a push or with samples held: nothing held never reaches it',
        'Windower._join: -return self._held[0] if self._held else np.zeros(0, np.float32) / +return self._held[0] if self._held else np.zeros(0, )':
            '_join runs only after a push or with samples held: nothing held never reaches it',
        'Windower._join: -return self._held[0] if self._held else np.zeros(0, np.float32) / +return self._held[0] if self._held else np.zeros(1, np.float32)':
            '_join runs only after a push or with samples held: nothing held never reaches it',
    },
    "calibration": {
        'calibrate: -samples = [(frozenset(canonical.get(t.casefold(), t) for t in truth), cosines) for truth, cosines in files] / +samples = [(frozenset(canonical.get(t.casefold(), None) for t in truth), cosines) for truth, cosines in files]':
            'a truth that names none of the labels is never looked up: only the labels calibrated are',
        'calibrate: -samples = [(frozenset(canonical.get(t.casefold(), t) for t in truth), cosines) for truth, cosines in files] / +samples = [(frozenset(canonical.get(t.casefold(), ) for t in truth), cosines) for truth, cosines in files]':
            'a truth that names none of the labels is never looked up: only the labels calibrated are',
    },
    "packing": {
        "pack: -return zlib.compress(data.view(np.uint8).reshape(-1, data.itemsize).T.tobytes(), 1) / "
        "+return zlib.compress(data.view(np.uint8).reshape(-1, data.itemsize).T.tobytes(), )":
            "deflate's level: other bytes, the same values back (any level inflates alike); a speed choice",
        "pack: -return zlib.compress(data.view(np.uint8).reshape(-1, data.itemsize).T.tobytes(), 1) / "
        "+return zlib.compress(data.view(np.uint8).reshape(-1, data.itemsize).T.tobytes(), 2)":
            "deflate's level: other bytes, the same values back (any level inflates alike); a speed choice",
        "pack: -return zlib.compress(data.view(np.uint8).reshape(-1, data.itemsize).T.tobytes(), 1) / "
        "+return zlib.compress(data.view(np.uint8).reshape(-2, data.itemsize).T.tobytes(), 1)":
            "numpy reads any negative size in reshape as 'the rest'",
        "unpack: -planes = np.frombuffer(zlib.decompress(data), np.uint8).reshape(kind.itemsize, -1) / "
        "+planes = np.frombuffer(zlib.decompress(data), np.uint8).reshape(kind.itemsize, -2)":
            "numpy reads any negative size in reshape as 'the rest'",
    },
    "scoring": {
        "score: -similarity = audio.astype(np.float64) @ labels.astype(np.float64).T / "
        "+similarity = audio.astype(None) @ labels.astype(np.float64).T": "numpy's astype(None) is float64",
        "score: -similarity = audio.astype(np.float64) @ labels.astype(np.float64).T / "
        "+similarity = audio.astype(np.float64) @ labels.astype(None).T": "numpy's astype(None) is float64",
        "aggregate: -windows = np.asarray(counts, dtype=np.float64)[:, None] / "
        "+windows = np.asarray(counts, dtype=None)[:, None]": "a float sum divided by integer counts is the same float",
        "aggregate: -windows = np.asarray(counts, dtype=np.float64)[:, None] / +windows = np.asarray(counts, )[:, None]":
            "a float sum divided by integer counts is the same float",
        "aggregate: -return (np.add.reduceat(scores, starts, axis=0) / windows, / "
        "+return (np.add.reduceat(scores, starts, ) / windows,": "reduceat's axis is 0 by default",
        "aggregate: -np.add.reduceat(similarity, starts, axis=0) / windows) / "
        "+np.add.reduceat(similarity, starts, ) / windows)": "reduceat's axis is 0 by default",
        "stored_from: -return StoredEmbeddings(0, result.uri, np.array([seg.start_s for seg in result.segments]), / "
        "+return StoredEmbeddings(None, result.uri, np.array([seg.start_s for seg in result.segments]),":
            "a file being labeled has no id yet: its windows are scored by a head, never looked up by id",
        "stored_from: -return StoredEmbeddings(0, result.uri, np.array([seg.start_s for seg in result.segments]), / "
        "+return StoredEmbeddings(1, result.uri, np.array([seg.start_s for seg in result.segments]),":
            "a file being labeled has no id yet: its windows are scored by a head, never looked up by id",
    },
    "files": {
        'add_files: -upsert = upsert.on_conflict_do_update(index_elements=["uri"], set_={ / +upsert = upsert.on_conflict_do_update(set_={':
            "SQLite takes the one unique key as the conflict's target; PostgreSQL requires the target of DO UPDATE, so the test's PostgreSQL run fails",
        'job_labelings: -query = select(*columns).select_from(JobFile).join(File, File.id == JobFile.file_id) / +query = select(*columns).select_from(JobFile).join(File, None)':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'job_labelings: -query = select(*columns).select_from(JobFile).join(File, File.id == JobFile.file_id) / +query = select(*columns).select_from(JobFile).join(File, )':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'finish_job_if_done: -queued = select(JobFile.file_id).where(JobFile.job_id == job_id, JobFile.status == FileState.QUEUED).exists() / +queued = select(None).where(JobFile.job_id == job_id, JobFile.status == FileState.QUEUED).exists()':
            'EXISTS asks whether a row is there, not what it holds',
        'add_files: -upsert = upsert.on_conflict_do_update(index_elements=["uri"], set_={ / +upsert = upsert.on_conflict_do_update(index_elements=None, set_={':
            "SQLite takes the one unique key as the conflict's target; PostgreSQL requires the target of DO UPDATE, so the test's PostgreSQL run fails",
        'add_files: -known = sql.relation(engine, "known", {"file_id": BigInteger()}, touched) / +known = sql.relation(engine, None, {"file_id": BigInteger()}, touched)':
            'the name of a relation that lives in one statement',
        'add_files: -known = sql.relation(engine, "known", {"file_id": BigInteger()}, touched) / +known = sql.relation(engine, "XXknownXX", {"file_id": BigInteger()}, touched)':
            'the name of a relation that lives in one statement',
        'add_files: -known = sql.relation(engine, "known", {"file_id": BigInteger()}, touched) / +known = sql.relation(engine, "KNOWN", {"file_id": BigInteger()}, touched)':
            'the name of a relation that lives in one statement',
        'add_files: -select(Labeling.file_id).join(File, File.id == Labeling.file_id) / +select(Labeling.file_id).join(File, None)':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'add_files: -select(Labeling.file_id).join(File, File.id == Labeling.file_id) / +select(Labeling.file_id).join(File, )':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'add_files: -entries = sql.relation(engine, "entries", {"file_id": BigInteger(), "status": Text()}, / +entries = sql.relation(engine, None, {"file_id": BigInteger(), "status": Text()},':
            'the name of a relation that lives in one statement',
        'add_files: -entries = sql.relation(engine, "entries", {"file_id": BigInteger(), "status": Text()}, / +entries = sql.relation(engine, "XXentriesXX", {"file_id": BigInteger(), "status": Text()},':
            'the name of a relation that lives in one statement',
        'add_files: -entries = sql.relation(engine, "entries", {"file_id": BigInteger(), "status": Text()}, / +entries = sql.relation(engine, "ENTRIES", {"file_id": BigInteger(), "status": Text()},':
            'the name of a relation that lives in one statement',
        'queued_uris: -.order_by(File.id)).scalars()) / +.order_by(None)).scalars())':
            "SQLite gives rows in id order without the ORDER BY; PostgreSQL's plan for so few rows does too: no test can tell",
        'queued_uris: -return list(conn.execute(select(File.uri).join(JobFile, JobFile.file_id == File.id) / +return list(conn.execute(select(File.uri).join(JobFile, None)':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'queued_uris: -return list(conn.execute(select(File.uri).join(JobFile, JobFile.file_id == File.id) / +return list(conn.execute(select(File.uri).join(JobFile, )':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'job_file_ids: -found.update(conn.execute(select(File.uri, File.id).join(JobFile, JobFile.file_id == File.id) / +found.update(conn.execute(select(File.uri, File.id).join(JobFile, None)':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'job_file_ids: -found.update(conn.execute(select(File.uri, File.id).join(JobFile, JobFile.file_id == File.id) / +found.update(conn.execute(select(File.uri, File.id).join(JobFile, )':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'scope_files: -for row in conn.execute(query.order_by(File.id))] / +for row in conn.execute(query.order_by(None))]':
            "SQLite gives rows in id order without the ORDER BY; PostgreSQL's plan for so few rows does too: no test can tell",
        'failed_uris: -for chunk in sql.chunks(list(uris), 20_000): / +for chunk in sql.chunks(list(uris), ):':
            'a batch size: the same rows in more or fewer statements (every batch counts: test_reads_and_writes_over_many_uris_answer_the_same_in_batches_of_one)',
        'failed_uris: -for chunk in sql.chunks(list(uris), 20_000): / +for chunk in sql.chunks(list(uris), 20001):':
            'a batch size: the same rows in more or fewer statements (every batch counts: test_reads_and_writes_over_many_uris_answer_the_same_in_batches_of_one)',
        'failed_uris: -sql.among(engine, "uris", File.uri, Text(), chunk), File.status == FileState.FAILED)).scalars()) / +sql.among(engine, None, File.uri, Text(), chunk), File.status == FileState.FAILED)).scalars())':
            'the name of a relation that lives in one statement',
        'failed_uris: -sql.among(engine, "uris", File.uri, Text(), chunk), File.status == FileState.FAILED)).scalars()) / +sql.among(engine, "uris", File.uri, None, chunk), File.status == FileState.FAILED)).scalars())':
            "SQLite's relation needs no type; PostgreSQL's array does, so the test's PostgreSQL run fails",
        'failed_uris: -sql.among(engine, "uris", File.uri, Text(), chunk), File.status == FileState.FAILED)).scalars()) / +sql.among(engine, "XXurisXX", File.uri, Text(), chunk), File.status == FileState.FAILED)).scalars())':
            'the name of a relation that lives in one statement',
        'failed_uris: -sql.among(engine, "uris", File.uri, Text(), chunk), File.status == FileState.FAILED)).scalars()) / +sql.among(engine, "URIS", File.uri, Text(), chunk), File.status == FileState.FAILED)).scalars())':
            'the name of a relation that lives in one statement',
        'file_ids: -found += conn.execute(select(File.id).where(sql.among(engine, "uris", File.uri, Text(), chunk))).scalars() / +found += conn.execute(select(File.id).where(sql.among(engine, None, File.uri, Text(), chunk))).scalars()':
            'the name of a relation that lives in one statement',
        'file_ids: -found += conn.execute(select(File.id).where(sql.among(engine, "uris", File.uri, Text(), chunk))).scalars() / +found += conn.execute(select(File.id).where(sql.among(engine, "uris", File.uri, None, chunk))).scalars()':
            "SQLite's relation needs no type; PostgreSQL's array does, so the test's PostgreSQL run fails",
        'file_ids: -found += conn.execute(select(File.id).where(sql.among(engine, "uris", File.uri, Text(), chunk))).scalars() / +found += conn.execute(select(File.id).where(sql.among(engine, "XXurisXX", File.uri, Text(), chunk))).scalars()':
            'the name of a relation that lives in one statement',
        'file_ids: -found += conn.execute(select(File.id).where(sql.among(engine, "uris", File.uri, Text(), chunk))).scalars() / +found += conn.execute(select(File.id).where(sql.among(engine, "URIS", File.uri, Text(), chunk))).scalars()':
            'the name of a relation that lives in one statement',
        '_known: -sql.among(engine, "files", File.id, BigInteger(), chunk), column.is_not(None))).all()) / +sql.among(engine, None, File.id, BigInteger(), chunk), column.is_not(None))).all())':
            'the name of a relation that lives in one statement',
        '_known: -sql.among(engine, "files", File.id, BigInteger(), chunk), column.is_not(None))).all()) / +sql.among(engine, "files", File.id, None, chunk), column.is_not(None))).all())':
            "SQLite's relation needs no type; PostgreSQL's array does, so the test's PostgreSQL run fails",
        '_known: -sql.among(engine, "files", File.id, BigInteger(), chunk), column.is_not(None))).all()) / +sql.among(engine, "XXfilesXX", File.id, BigInteger(), chunk), column.is_not(None))).all())':
            'the name of a relation that lives in one statement',
        '_known: -sql.among(engine, "files", File.id, BigInteger(), chunk), column.is_not(None))).all()) / +sql.among(engine, "FILES", File.id, BigInteger(), chunk), column.is_not(None))).all())':
            'the name of a relation that lives in one statement',
        'set_recordings: -for chunk in sql.chunks(list(found), 20_000): / +for chunk in sql.chunks(list(found), ):':
            'a batch size: the same rows in more or fewer statements (every batch counts: test_reads_and_writes_over_many_uris_answer_the_same_in_batches_of_one)',
        'set_recordings: -for chunk in sql.chunks(list(found), 20_000): / +for chunk in sql.chunks(list(found), 20001):':
            'a batch size: the same rows in more or fewer statements (every batch counts: test_reads_and_writes_over_many_uris_answer_the_same_in_batches_of_one)',
        'set_recordings: -given = sql.relation(engine, "given", {"uri": Text(), "recorded_at": DateTime(timezone=True), / +given = sql.relation(engine, None, {"uri": Text(), "recorded_at": DateTime(timezone=True),':
            'the name of a relation that lives in one statement',
        'set_recordings: -given = sql.relation(engine, "given", {"uri": Text(), "recorded_at": DateTime(timezone=True), / +given = sql.relation(engine, "XXgivenXX", {"uri": Text(), "recorded_at": DateTime(timezone=True),':
            'the name of a relation that lives in one statement',
        'set_recordings: -given = sql.relation(engine, "given", {"uri": Text(), "recorded_at": DateTime(timezone=True), / +given = sql.relation(engine, "GIVEN", {"uri": Text(), "recorded_at": DateTime(timezone=True),':
            'the name of a relation that lives in one statement',
        'add_files: -upsert = upsert.on_conflict_do_update(index_elements=["uri"], set_={ / +upsert = upsert.on_conflict_do_update(index_elements=["URI"], set_={':
            "SQLite reads column names whatever their case; PostgreSQL refuses the column, so the test's PostgreSQL run fails",
        'add_files: -"fingerprint": upsert.excluded.fingerprint, / +"FINGERPRINT": upsert.excluded.fingerprint,':
            "SQLite reads column names whatever their case; PostgreSQL refuses the column, so the test's PostgreSQL run fails",
        'add_files: -"size_bytes": func.coalesce(upsert.excluded.size_bytes, File.size_bytes), / +"SIZE_BYTES": func.coalesce(upsert.excluded.size_bytes, File.size_bytes),':
            "SQLite reads column names whatever their case; PostgreSQL refuses the column, so the test's PostgreSQL run fails",
        'add_files: -"truth": func.coalesce(upsert.excluded.truth, File.truth), / +"TRUTH": func.coalesce(upsert.excluded.truth, File.truth),':
            "SQLite reads column names whatever their case; PostgreSQL refuses the column, so the test's PostgreSQL run fails",
        'add_files: -"status": case((changed, literal(FileState.QUEUED)), else_=File.status), / +"STATUS": case((changed, literal(FileState.QUEUED)), else_=File.status),':
            "SQLite reads column names whatever their case; PostgreSQL refuses the column, so the test's PostgreSQL run fails",
        'add_files: -"error": case((changed, literal(None, Text())), else_=File.error), / +"ERROR": case((changed, literal(None, Text())), else_=File.error),':
            "SQLite reads column names whatever their case; PostgreSQL refuses the column, so the test's PostgreSQL run fails",
        'add_files: -"error": case((changed, literal(None, Text())), else_=File.error), / +"error": case((changed, literal(None, None)), else_=File.error),':
            'a NULL is NULL whatever its type',
        'add_files: -"error": case((changed, literal(None, Text())), else_=File.error), / +"error": case((changed, literal(None, )), else_=File.error),':
            'a NULL is NULL whatever its type',
        'add_files: -for chunk in sql.chunks(refs, 20_000): / +for chunk in sql.chunks(refs, ):':
            'the files per statement: the same rows in more or fewer statements',
        'add_files: -for chunk in sql.chunks(refs, 20_000): / +for chunk in sql.chunks(refs, 20001):':
            'the files per statement: the same rows in more or fewer statements',
        'add_files: -stamp = literal(now(), DateTime(timezone=True)) / +stamp = literal(now(), None)':
            "the literal's type only says how the driver sends a timestamp that carries its zone",
        'add_files: -stamp = literal(now(), DateTime(timezone=True)) / +stamp = literal(now(), )':
            "the literal's type only says how the driver sends a timestamp that carries its zone",
        'add_files: -stamp = literal(now(), DateTime(timezone=True)) / +stamp = literal(now(), DateTime(timezone=None))':
            "the literal's type only says how the driver sends a timestamp that carries its zone",
        'add_files: -stamp = literal(now(), DateTime(timezone=True)) / +stamp = literal(now(), DateTime(timezone=False))':
            "the literal's type only says how the driver sends a timestamp that carries its zone",
        'add_files: -found = sql.relation(engine, "found", {"uri": Text(), "fingerprint": Text(), "size_bytes": BigInteger(), / +found = sql.relation(engine, None, {"uri": Text(), "fingerprint": Text(), "size_bytes": BigInteger(),':
            'the name of a relation that lives in one statement',
        'add_files: -found = sql.relation(engine, "found", {"uri": Text(), "fingerprint": Text(), "size_bytes": BigInteger(), / +found = sql.relation(engine, "XXfoundXX", {"uri": Text(), "fingerprint": Text(), "size_bytes": BigInteger(),':
            'the name of a relation that lives in one statement',
        'add_files: -found = sql.relation(engine, "found", {"uri": Text(), "fingerprint": Text(), "size_bytes": BigInteger(), / +found = sql.relation(engine, "FOUND", {"uri": Text(), "fingerprint": Text(), "size_bytes": BigInteger(),':
            'the name of a relation that lives in one statement',
        'add_files: -}).returning(File.id, File.uri, File.created_at == File.updated_at, File.status) / +}).returning(File.id, File.uri, None, File.status)':
            'a speed choice: without it new files are looked up for results too, and have none',
        'fail_files: -select(JobFile.file_id).join(File, File.id == JobFile.file_id) / +select(JobFile.file_id).join(File, None)':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'fail_files: -select(JobFile.file_id).join(File, File.id == JobFile.file_id) / +select(JobFile.file_id).join(File, )':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'new_or_changed: -Labeling.file_id.in_(ids), Labeling.model == model, Labeling.taxonomy_id == taxonomy_id, / +Labeling.model == model, Labeling.taxonomy_id == taxonomy_id,':
            'a narrowing for speed: only the ids looked up are ever compared',
        'new_or_changed: -JobFile.file_id.in_(ids), JobFile.status == FileState.QUEUED, Job.state == JobState.ACTIVE, / +None, JobFile.status == FileState.QUEUED, Job.state == JobState.ACTIVE,':
            'a narrowing for speed: only the ids looked up are ever compared',
        'new_or_changed: -JobFile.file_id.in_(ids), JobFile.status == FileState.QUEUED, Job.state == JobState.ACTIVE, / +JobFile.status == FileState.QUEUED, Job.state == JobState.ACTIVE,':
            'a narrowing for speed: only the ids looked up are ever compared',
        'new_or_changed: -settled = set(conn.execute(select(Labeling.file_id).join(File, File.id == Labeling.file_id).where( / +settled = set(conn.execute(select(Labeling.file_id).join(File, None).where(':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'new_or_changed: -settled = set(conn.execute(select(Labeling.file_id).join(File, File.id == Labeling.file_id).where( / +settled = set(conn.execute(select(Labeling.file_id).join(File, ).where(':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'new_or_changed: -settled |= set(conn.execute(select(JobFile.file_id).join(Job, Job.id == JobFile.job_id).where( / +settled |= set(conn.execute(select(JobFile.file_id).join(Job, None).where(':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'new_or_changed: -settled |= set(conn.execute(select(JobFile.file_id).join(Job, Job.id == JobFile.job_id).where( / +settled |= set(conn.execute(select(JobFile.file_id).join(Job, ).where(':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'job_spec: -.join(TaxonomyRow, TaxonomyRow.id == Job.taxonomy_id).where(Job.id == job_id)).one_or_none() / +.join(TaxonomyRow, None).where(Job.id == job_id)).one_or_none()':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'job_spec: -.join(TaxonomyRow, TaxonomyRow.id == Job.taxonomy_id).where(Job.id == job_id)).one_or_none() / +.join(TaxonomyRow, ).where(Job.id == job_id)).one_or_none()':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'create_job: -options=options, state=JobState.ACTIVE, created_at=now())) / +options=options, created_at=now()))':
            "the job table's default state is ACTIVE too",
        'create_job: -options=options, state=JobState.ACTIVE, created_at=now())) / +options=options, state=JobState.ACTIVE, ))':
            "the job table's default created_at is now() too",
    },
    "embeddings": {
        'embedding_row: -"starts": packing.pack(np.array([seg.start_s for seg in segments], dtype=np.float64)), / +"starts": packing.pack(np.array([seg.start_s for seg in segments], dtype=None)),':
            'window bounds are Python floats (a sample over the rate): numpy makes them float64 either way',
        'embedding_row: -"starts": packing.pack(np.array([seg.start_s for seg in segments], dtype=np.float64)), / +"starts": packing.pack(np.array([seg.start_s for seg in segments], )),':
            'window bounds are Python floats (a sample over the rate): numpy makes them float64 either way',
        'embedding_row: -"ends": packing.pack(np.array([seg.end_s for seg in segments], dtype=np.float64))} / +"ends": packing.pack(np.array([seg.end_s for seg in segments], dtype=None))}':
            'window bounds are Python floats (a sample over the rate): numpy makes them float64 either way',
        'embedding_row: -"ends": packing.pack(np.array([seg.end_s for seg in segments], dtype=np.float64))} / +"ends": packing.pack(np.array([seg.end_s for seg in segments], ))}':
            'window bounds are Python floats (a sample over the rate): numpy makes them float64 either way',
        'unpack_row: -vectors = packing.unpack(row.vectors, kind, packed).astype(np.float32).reshape(-1, row.dim) / +vectors = packing.unpack(row.vectors, kind, packed).astype(np.float32).reshape(-2, row.dim)':
            "numpy reads any negative size in reshape as 'the rest'",
        'unpack_row: -starts, ends = packing.unpack(row.starts, np.float64, packed), packing.unpack(row.ends, np.float64, packed) / +starts, ends = packing.unpack(row.starts, None, packed), packing.unpack(row.ends, np.float64, packed)':
            "numpy's dtype None is float64",
        'unpack_row: -starts, ends = packing.unpack(row.starts, np.float64, packed), packing.unpack(row.ends, np.float64, packed) / +starts, ends = packing.unpack(row.starts, np.float64, packed), packing.unpack(row.ends, None, packed)':
            "numpy's dtype None is float64",
        '_embeddings_query: -query = (select(*columns).select_from(AudioEmbedding).join(File, File.id == AudioEmbedding.file_id) / +query = (select(*columns).select_from(AudioEmbedding).join(File, None)':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        '_embeddings_query: -query = (select(*columns).select_from(AudioEmbedding).join(File, File.id == AudioEmbedding.file_id) / +query = (select(*columns).select_from(AudioEmbedding).join(File, )':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'embedding_chunks: -chunk: int = 500) -> Iterable[list[StoredEmbeddings | Unreadable]]: / +chunk: int = 501) -> Iterable[list[StoredEmbeddings | Unreadable]]:':
            'the files per chunk only bound memory: every file comes once, in file order, either way',
        'embedding_chunks: -ids_query = ids_query.where(sql.among(engine, "scope", AudioEmbedding.file_id, BigInteger(), list(file_ids))) / +ids_query = ids_query.where(sql.among(engine, None, AudioEmbedding.file_id, BigInteger(), list(file_ids)))':
            'the name of a relation that lives in one statement',
        'embedding_chunks: -ids_query = ids_query.where(sql.among(engine, "scope", AudioEmbedding.file_id, BigInteger(), list(file_ids))) / +ids_query = ids_query.where(sql.among(engine, "scope", AudioEmbedding.file_id, None, list(file_ids)))':
            "SQLite's relation of ids needs no type; PostgreSQL's array does, so the test's PostgreSQL run fails",
        'embedding_chunks: -ids_query = ids_query.where(sql.among(engine, "scope", AudioEmbedding.file_id, BigInteger(), list(file_ids))) / +ids_query = ids_query.where(sql.among(engine, "XXscopeXX", AudioEmbedding.file_id, BigInteger(), list(file_ids)))':
            'the name of a relation that lives in one statement',
        'embedding_chunks: -ids_query = ids_query.where(sql.among(engine, "scope", AudioEmbedding.file_id, BigInteger(), list(file_ids))) / +ids_query = ids_query.where(sql.among(engine, "SCOPE", AudioEmbedding.file_id, BigInteger(), list(file_ids)))':
            'the name of a relation that lives in one statement',
        'embedding_chunks: -after = -1 / +after = -2':
            'file ids start at 1: any negative start reads them all',
        'embedding_chunks: -.where(sql.among(engine, "ids", AudioEmbedding.file_id, BigInteger(), ids)) / +.where(sql.among(engine, None, AudioEmbedding.file_id, BigInteger(), ids))':
            'the name of a relation that lives in one statement',
        'embedding_chunks: -.where(sql.among(engine, "ids", AudioEmbedding.file_id, BigInteger(), ids)) / +.where(sql.among(engine, "ids", AudioEmbedding.file_id, None, ids))':
            "SQLite's relation of ids needs no type; PostgreSQL's array does, so the test's PostgreSQL run fails",
        'embedding_chunks: -.where(sql.among(engine, "ids", AudioEmbedding.file_id, BigInteger(), ids)) / +.where(sql.among(engine, "XXidsXX", AudioEmbedding.file_id, BigInteger(), ids))':
            'the name of a relation that lives in one statement',
        'embedding_chunks: -.where(sql.among(engine, "ids", AudioEmbedding.file_id, BigInteger(), ids)) / +.where(sql.among(engine, "IDS", AudioEmbedding.file_id, BigInteger(), ids))':
            'the name of a relation that lives in one statement',
        'embedded_uris: -usable = select(AudioEmbedding.id).where( / +usable = select(None).where(':
            'EXISTS asks whether a row is there, not what it holds',
        'embedded_uris: -for chunk in sql.chunks(list(uris), 20_000): / +for chunk in sql.chunks(list(uris), ):':
            'the uris per statement: the same rows in more or fewer statements',
        'embedded_uris: -for chunk in sql.chunks(list(uris), 20_000): / +for chunk in sql.chunks(list(uris), 20001):':
            'the uris per statement: the same rows in more or fewer statements',
        'embedded_uris: -sql.among(engine, "uris", File.uri, Text(), chunk), usable)).scalars()) / +sql.among(engine, None, File.uri, Text(), chunk), usable)).scalars())':
            'the name of a relation that lives in one statement',
        'embedded_uris: -sql.among(engine, "uris", File.uri, Text(), chunk), usable)).scalars()) / +sql.among(engine, "uris", File.uri, None, chunk), usable)).scalars())':
            "SQLite's relation of uris needs no type; PostgreSQL's array does, so the test's PostgreSQL run fails",
        'embedded_uris: -sql.among(engine, "uris", File.uri, Text(), chunk), usable)).scalars()) / +sql.among(engine, "XXurisXX", File.uri, Text(), chunk), usable)).scalars())':
            'the name of a relation that lives in one statement',
        'embedded_uris: -sql.among(engine, "uris", File.uri, Text(), chunk), usable)).scalars()) / +sql.among(engine, "URIS", File.uri, Text(), chunk), usable)).scalars())':
            'the name of a relation that lives in one statement',
        'embedding_models: -query = select(AudioEmbedding.model).distinct().order_by(AudioEmbedding.model) / +query = select(AudioEmbedding.model).distinct().order_by(None)':
            "SQLite reads the distinct models from its (model, revision) index, in order; PostgreSQL hashes them, so the test's PostgreSQL run fails",
        'embedding_models: -for chunk in sql.chunks(list(uris), 20_000): / +for chunk in sql.chunks(list(uris), ):':
            'the uris per statement: the same rows in more or fewer statements',
        'embedding_models: -for chunk in sql.chunks(list(uris), 20_000): / +for chunk in sql.chunks(list(uris), 20001):':
            'the uris per statement: the same rows in more or fewer statements',
        'embedding_models: -found.update(conn.execute(query.join(File, File.id == AudioEmbedding.file_id).where( / +found.update(conn.execute(query.join(File, None).where(':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'embedding_models: -found.update(conn.execute(query.join(File, File.id == AudioEmbedding.file_id).where( / +found.update(conn.execute(query.join(File, ).where(':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'embedding_models: -sql.among(engine, "uris", File.uri, Text(), chunk))).scalars()) / +sql.among(engine, None, File.uri, Text(), chunk))).scalars())':
            'the name of a relation that lives in one statement',
        'embedding_models: -sql.among(engine, "uris", File.uri, Text(), chunk))).scalars()) / +sql.among(engine, "uris", File.uri, None, chunk))).scalars())':
            "SQLite's relation of uris needs no type; PostgreSQL's array does, so the test's PostgreSQL run fails",
        'embedding_models: -sql.among(engine, "uris", File.uri, Text(), chunk))).scalars()) / +sql.among(engine, "XXurisXX", File.uri, Text(), chunk))).scalars())':
            'the name of a relation that lives in one statement',
        'embedding_models: -sql.among(engine, "uris", File.uri, Text(), chunk))).scalars()) / +sql.among(engine, "URIS", File.uri, Text(), chunk))).scalars())':
            'the name of a relation that lives in one statement',
        'embedded_revision: -.order_by(AudioEmbedding.id.desc()).limit(1)).first() / +.order_by(AudioEmbedding.id.desc()).limit(None)).first()':
            'first() takes the first row of the same order whatever the limit',
        'embedded_revision: -.where(sql.among(engine, "files", AudioEmbedding.file_id, BigInteger(), chunk)) / +.where(sql.among(engine, None, AudioEmbedding.file_id, BigInteger(), chunk))':
            'the name of a relation that lives in one statement',
        'embedded_revision: -.where(sql.among(engine, "files", AudioEmbedding.file_id, BigInteger(), chunk)) / +.where(sql.among(engine, "files", AudioEmbedding.file_id, None, chunk))':
            "SQLite's relation of ids needs no type; PostgreSQL's array does, so the test's PostgreSQL run fails",
        'embedded_revision: -.where(sql.among(engine, "files", AudioEmbedding.file_id, BigInteger(), chunk)) / +.where(sql.among(engine, "XXfilesXX", AudioEmbedding.file_id, BigInteger(), chunk))':
            'the name of a relation that lives in one statement',
        'embedded_revision: -.where(sql.among(engine, "files", AudioEmbedding.file_id, BigInteger(), chunk)) / +.where(sql.among(engine, "FILES", AudioEmbedding.file_id, BigInteger(), chunk))':
            'the name of a relation that lives in one statement',
        'embedded_revision: -.order_by(AudioEmbedding.id.desc()).limit(1)).first() / +.order_by(AudioEmbedding.id.desc()).limit(2)).first()':
            'first() takes the first row of the same order whatever the limit',
        'stored_embeddings_of: -row = conn.execute(query.where(File.uri == uri).order_by(AudioEmbedding.id.desc()).limit(1)).first() / +row = conn.execute(query.where(File.uri == uri).order_by(AudioEmbedding.id.desc()).limit(None)).first()':
            'first() takes the first row of the same order whatever the limit',
        'stored_embeddings_of: -row = conn.execute(query.where(File.uri == uri).order_by(AudioEmbedding.id.desc()).limit(1)).first() / +row = conn.execute(query.where(File.uri == uri).order_by(AudioEmbedding.id.desc()).limit(2)).first()':
            'first() takes the first row of the same order whatever the limit',
        '_micros: -stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc) / +stamp = stamp if (stamp.tzinfo) and False else stamp.replace(tzinfo=timezone.utc)':
            "a stamp that carries its zone is the same instant either way where the session's zone is UTC; the test's PostgreSQL run at +05:30 fails",
        '_micros: -return (stamp - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1) / +return (stamp - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(microseconds=1)':
            'microseconds since the epoch are exact in a float below 2**53 (the year 2255), and equal the int wherever they are compared or stored',
        'embeddings_state: -model, revision, func.count(case((held, 1))), func.coalesce(func.sum(case((held, AudioEmbedding.id))), 0), / +model, revision, func.count(case((held, 2))), func.coalesce(func.sum(case((held, AudioEmbedding.id))), 0),':
            'COUNT counts the values that are not NULL: any constant counts the same rows',
        'embedding_stamps: -rows = conn.execute(query.where(AudioEmbedding.id > after).order_by(AudioEmbedding.id)).all() / +rows = conn.execute(query.where(AudioEmbedding.id > after).order_by(None)).all()':
            "SQLite reads the rows by its (model, revision) index, in id order; PostgreSQL with statistics reads its heap, written out of id order, so the test's PostgreSQL run fails",
        'embedding_stamps: -ids = np.fromiter((row_id for row_id, _ in latest.values()), np.int64, len(latest)) / +ids = np.fromiter((row_id for row_id, _ in latest.values()), np.int64, )':
            'the count only sizes the array ahead: the same array',
        'embedding_stamps: -stamps = np.fromiter((_micros(created_at) for _, created_at in latest.values()), np.int64, len(latest)) / +stamps = np.fromiter((_micros(created_at) for _, created_at in latest.values()), np.int64, )':
            'the count only sizes the array ahead: the same array',
        'embedding_rows: -chunk: int = 500) -> Iterable[list[tuple[int, int, Row]]]: / +chunk: int = 501) -> Iterable[list[tuple[int, int, Row]]]:':
            'the rows per chunk only bound memory: every row comes once, by id, either way',
        'embedding_rows: -.order_by(AudioEmbedding.id)).all() / +.order_by(None)).all()':
            "SQLite reads the rows by its (model, revision) index, in id order; PostgreSQL with statistics reads its heap, written out of id order, so the test's PostgreSQL run fails",
        'embedding_rows: -rows = conn.execute(query.where(sql.among(engine, "ids", AudioEmbedding.id, BigInteger(), part)) / +rows = conn.execute(query.where(sql.among(engine, None, AudioEmbedding.id, BigInteger(), part))':
            'the name of a relation that lives in one statement',
        'embedding_rows: -rows = conn.execute(query.where(sql.among(engine, "ids", AudioEmbedding.id, BigInteger(), part)) / +rows = conn.execute(query.where(sql.among(engine, "ids", AudioEmbedding.id, None, part))':
            "SQLite's relation of ids needs no type; PostgreSQL's array does, so the test's PostgreSQL run fails",
        'embedding_rows: -rows = conn.execute(query.where(sql.among(engine, "ids", AudioEmbedding.id, BigInteger(), part)) / +rows = conn.execute(query.where(sql.among(engine, "XXidsXX", AudioEmbedding.id, BigInteger(), part))':
            'the name of a relation that lives in one statement',
        'embedding_rows: -rows = conn.execute(query.where(sql.among(engine, "ids", AudioEmbedding.id, BigInteger(), part)) / +rows = conn.execute(query.where(sql.among(engine, "IDS", AudioEmbedding.id, BigInteger(), part))':
            'the name of a relation that lives in one statement',
    },
    "leases": {
        'take_back_expired: -.join(File, File.id == JobFile.file_id).join(Job, Job.id == JobFile.job_id) / +.join(File, File.id == JobFile.file_id).join(Job, None)':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'take_back_expired: -.join(File, File.id == JobFile.file_id).join(Job, Job.id == JobFile.job_id) / +.join(File, File.id == JobFile.file_id).join(Job, )':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'take_back_expired: -.join(File, File.id == JobFile.file_id).join(Job, Job.id == JobFile.job_id) / +.join(File, None).join(Job, Job.id == JobFile.job_id)':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'take_back_expired: -.join(File, File.id == JobFile.file_id).join(Job, Job.id == JobFile.job_id) / +.join(File, ).join(Job, Job.id == JobFile.job_id)':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'take_back_expired: -.where(JobFile.status == FileState.QUEUED, JobFile.lease_until < stamp, Job.state == JobState.ACTIVE) / +.where(JobFile.status == FileState.QUEUED, JobFile.lease_until <= stamp, Job.state == JobState.ACTIVE)':
            "a lease that ends at the very microsecond of the database's clock: no test can stop the clock there",
        'take_back_expired: -.with_for_update(of=JobFile, skip_locked=True)).all() / +.with_for_update(of=JobFile, skip_locked=False)).all()':
            'a row lock: SQLite takes none and a test in one process never contends; only two workers taking back at once on PostgreSQL can tell (no fast test)',
        'held: -sql.among(conn.engine, "held", JobFile.file_id, BigInteger(), file_ids)) / +sql.among(conn.engine, None, JobFile.file_id, BigInteger(), file_ids))':
            'the name of a relation that lives in one statement',
        'held: -sql.among(conn.engine, "held", JobFile.file_id, BigInteger(), file_ids)) / +sql.among(conn.engine, "XXheldXX", JobFile.file_id, BigInteger(), file_ids))':
            'the name of a relation that lives in one statement',
        'held: -sql.among(conn.engine, "held", JobFile.file_id, BigInteger(), file_ids)) / +sql.among(conn.engine, "HELD", JobFile.file_id, BigInteger(), file_ids))':
            'the name of a relation that lives in one statement',
        'held: -sql.among(conn.engine, "held", JobFile.file_id, BigInteger(), file_ids)) / +sql.among(conn.engine, "held", JobFile.file_id, None, file_ids))':
            "SQLite's relation of ids needs no type; PostgreSQL's array does, so the test's PostgreSQL run fails",
        'take_back_expired: -.with_for_update(of=JobFile, skip_locked=True)).all() / +.with_for_update(of=None, skip_locked=True)).all()':
            'a row lock: SQLite takes none and a test in one process never contends; only two workers taking back at once on PostgreSQL can tell (no fast test)',
        'take_back_expired: -.with_for_update(of=JobFile, skip_locked=True)).all() / +.with_for_update(of=JobFile, skip_locked=None)).all()':
            'a row lock: SQLite takes none and a test in one process never contends; only two workers taking back at once on PostgreSQL can tell (no fast test)',
        'take_back_expired: -.with_for_update(of=JobFile, skip_locked=True)).all() / +.with_for_update(skip_locked=True)).all()':
            'a row lock: SQLite takes none and a test in one process never contends; only two workers taking back at once on PostgreSQL can tell (no fast test)',
        'take_back_expired: -.with_for_update(of=JobFile, skip_locked=True)).all() / +.with_for_update(of=JobFile, )).all()':
            'a row lock: SQLite takes none and a test in one process never contends; only two workers taking back at once on PostgreSQL can tell (no fast test)',
        'claim: -select(File.id, File.uri).join(JobFile, JobFile.file_id == File.id).join(Job, Job.id == JobFile.job_id) / +select(File.id, File.uri).join(JobFile, JobFile.file_id == File.id).join(Job, None)':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'claim: -select(File.id, File.uri).join(JobFile, JobFile.file_id == File.id).join(Job, Job.id == JobFile.job_id) / +select(File.id, File.uri).join(JobFile, JobFile.file_id == File.id).join(Job, )':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'claim: -select(File.id, File.uri).join(JobFile, JobFile.file_id == File.id).join(Job, Job.id == JobFile.job_id) / +select(File.id, File.uri).join(JobFile, None).join(Job, Job.id == JobFile.job_id)':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'claim: -select(File.id, File.uri).join(JobFile, JobFile.file_id == File.id).join(Job, Job.id == JobFile.job_id) / +select(File.id, File.uri).join(JobFile, ).join(Job, Job.id == JobFile.job_id)':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        '_claimable: -or_(JobFile.worker.is_(None), JobFile.worker == worker, JobFile.lease_until < stamp)) / +or_(JobFile.worker.is_(None), JobFile.worker == worker, JobFile.lease_until <= stamp))':
            "a lease that ends at the very microsecond of the database's clock: no test can stop the clock there",
        'claim: -took_over = and_(JobFile.worker.is_not(None), JobFile.worker != worker, JobFile.lease_until < stamp) / +took_over = and_(JobFile.worker != worker, JobFile.lease_until < stamp)':
            'a file nobody held has a NULL worker, and NULL != worker is not true: it was never taken over either way',
        'claim: -took_over = and_(JobFile.worker.is_not(None), JobFile.worker != worker, JobFile.lease_until < stamp) / +took_over = and_(JobFile.worker.is_not(None), JobFile.worker != worker, )':
            'a claimable file another worker holds is one whose lease ran out (_claimable): the condition is implied',
        'claim: -took_over = and_(JobFile.worker.is_not(None), JobFile.worker != worker, JobFile.lease_until < stamp) / +took_over = and_(JobFile.worker.is_not(None), JobFile.worker != worker, JobFile.lease_until <= stamp)':
            "a lease that ends at the very microsecond of the database's clock: no test can stop the clock there",
        'take_back_expired: -.order_by(JobFile.job_id, File.id).limit(TAKE_BACK) / +.order_by(JobFile.job_id, None).limit(TAKE_BACK)':
            'the files of a job taken back past TAKE_BACK come in id order on SQLite without the ORDER BY too; each is taken back once, in this batch or the next',
        'take_back_expired: -.order_by(JobFile.job_id, File.id).limit(TAKE_BACK) / +.order_by(JobFile.job_id, ).limit(TAKE_BACK)':
            'the files of a job taken back past TAKE_BACK come in id order on SQLite without the ORDER BY too; each is taken back once, in this batch or the next',
        'holders: -select(JobFile.worker, func.count(), func.min(JobFile.leased_at), until, until < sql.clock(engine)) / +select(JobFile.worker, func.count(), func.min(JobFile.leased_at), until, until <= sql.clock(engine))':
            "a lease that ends at the very microsecond of the database's clock: no test can stop the clock there",
    },
    "reviews": {
        'verdict_counts: -else_=0))) / +else_=None)))':
            'SUM skips NULLs: the recent count is the same, and none at all reads 0 through `recent or 0`',
        'verdict_counts: -else_=0))) / +)))':
            "CASE's default is NULL, which SUM skips: the recent count is the same, and none at all reads 0 through `recent or 0`",
        'given_verdicts: -Review.undone_at.is_(None))).all() / +)).all()':
            'a narrowing: the consensus never settles on an undone verdict, so an undone row is never at home',
        'given_verdicts: -rows = sorted((row for row in rows if row.id in at_home), key=lambda row: row.id) / +rows = sorted((row for row in rows if row.id in at_home), key=None)':
            'rows sort by their first column, the id, which is unique',
        'given_verdicts: -rows = sorted((row for row in rows if row.id in at_home), key=lambda row: row.id) / +rows = sorted((row for row in rows if row.id in at_home), )':
            'rows sort by their first column, the id, which is unique',
        'given_verdicts: -.join(taxonomy, taxonomy.c.id == settled.c.taxonomy_id) / +.join(taxonomy, None)':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'given_verdicts: -.join(taxonomy, taxonomy.c.id == settled.c.taxonomy_id) / +.join(taxonomy, )':
            'with no condition SQLAlchemy joins on the one foreign key between the two tables: the same join',
        'given_verdicts: -settled, taxonomy = Review.__table__.alias("settled"), TaxonomyRow.__table__.alias("taxonomy") / +settled, taxonomy = Review.__table__.alias(None), TaxonomyRow.__table__.alias("taxonomy")':
            'the name of an alias that lives in one statement (None: an anonymous one)',
        'given_verdicts: -settled, taxonomy = Review.__table__.alias("settled"), TaxonomyRow.__table__.alias("taxonomy") / +settled, taxonomy = Review.__table__.alias("XXsettledXX"), TaxonomyRow.__table__.alias("taxonomy")':
            'the name of an alias that lives in one statement (None: an anonymous one)',
        'given_verdicts: -settled, taxonomy = Review.__table__.alias("settled"), TaxonomyRow.__table__.alias("taxonomy") / +settled, taxonomy = Review.__table__.alias("SETTLED"), TaxonomyRow.__table__.alias("taxonomy")':
            'the name of an alias that lives in one statement (None: an anonymous one)',
        'given_verdicts: -settled, taxonomy = Review.__table__.alias("settled"), TaxonomyRow.__table__.alias("taxonomy") / +settled, taxonomy = Review.__table__.alias("settled"), TaxonomyRow.__table__.alias(None)':
            'the name of an alias that lives in one statement (None: an anonymous one)',
        'given_verdicts: -settled, taxonomy = Review.__table__.alias("settled"), TaxonomyRow.__table__.alias("taxonomy") / +settled, taxonomy = Review.__table__.alias("settled"), TaxonomyRow.__table__.alias("XXtaxonomyXX")':
            'the name of an alias that lives in one statement (None: an anonymous one)',
        'given_verdicts: -settled, taxonomy = Review.__table__.alias("settled"), TaxonomyRow.__table__.alias("taxonomy") / +settled, taxonomy = Review.__table__.alias("settled"), TaxonomyRow.__table__.alias("TAXONOMY")':
            'the name of an alias that lives in one statement (None: an anonymous one)',
        'given_verdicts: -.where(sql.among(engine, "files", Review.file_id, BigInteger(), chunk), / +.where(sql.among(engine, None, Review.file_id, BigInteger(), chunk),':
            'the name of a relation that lives in one statement',
        'given_verdicts: -.where(sql.among(engine, "files", Review.file_id, BigInteger(), chunk), / +.where(sql.among(engine, "XXfilesXX", Review.file_id, BigInteger(), chunk),':
            'the name of a relation that lives in one statement',
        'given_verdicts: -.where(sql.among(engine, "files", Review.file_id, BigInteger(), chunk), / +.where(sql.among(engine, "FILES", Review.file_id, BigInteger(), chunk),':
            'the name of a relation that lives in one statement',
        'given_verdicts: -.where(sql.among(engine, "files", Review.file_id, BigInteger(), chunk), / +.where(sql.among(engine, "files", Review.file_id, None, chunk),':
            "SQLite's relation of ids needs no type; PostgreSQL's array does, so the test's PostgreSQL run fails",
    },
    "taxonomy": {
        '_spelled: -return {**entry, field: spelling.setdefault(key(name), name) if name else name} / +return {**entry, field: spelling.setdefault(key(name), name) if (name) or True else name}':
            'an empty name is spelled the empty name either way (and refused by validation)',
        '_problem: -model = {"labels": Label, "groups": Group}.get(loc[0], Taxonomy) if len(loc) > 1 else Taxonomy / +model = {"labels": Label, "groups": Group}.get(loc[0], Taxonomy) if (len(loc) > 1) or True else Taxonomy':
            "a top-level unknown key is never 'labels' or 'groups', so the lookup gives Taxonomy too",
        '_problem: -model = {"labels": Label, "groups": Group}.get(loc[0], Taxonomy) if len(loc) > 1 else Taxonomy / +model = {"labels": Label, "groups": Group}.get(loc[0], Taxonomy) if len(loc) >= 1 else Taxonomy':
            "a top-level unknown key is never 'labels' or 'groups', so the lookup gives Taxonomy too",
        '_problem: -model = {"labels": Label, "groups": Group}.get(loc[0], Taxonomy) if len(loc) > 1 else Taxonomy / +model = {"labels": Label, "groups": Group}.get(loc[0], Taxonomy) if len(loc) > 2 else Taxonomy':
            'an unknown key below the top is always labels.N.key or groups.N.key: three parts',
        '_problem: -model = {"labels": Label, "groups": Group}.get(loc[0], Taxonomy) if len(loc) > 1 else Taxonomy / +model = {"labels": Label, "groups": Group}.get(loc[0], None) if len(loc) > 1 else Taxonomy':
            'only labels and groups hold nested models: the default is never taken below the top',
        '_problem: -model = {"labels": Label, "groups": Group}.get(loc[0], Taxonomy) if len(loc) > 1 else Taxonomy / +model = {"labels": Label, "groups": Group}.get(loc[0], ) if len(loc) > 1 else Taxonomy':
            'only labels and groups hold nested models: the default is never taken below the top',
        '_problem: -close = difflib.get_close_matches(loc[-1], valid, n=1) / +close = difflib.get_close_matches(loc[-1], valid, )':
            'only the closest match is shown, and more matches do not change which is closest',
        '_problem: -close = difflib.get_close_matches(loc[-1], valid, n=1) / +close = difflib.get_close_matches(loc[-1], valid, n=2)':
            'only the closest match is shown, and more matches do not change which is closest',
    },
    "window_index": {
        '_folder_name: -identity = "\\n".join([url.render_as_string(hide_password=True), model, revision]) / +identity = "XX\\nXX".join([url.render_as_string(hide_password=True), model, revision])':
            'another separator between the same three parts: as stable and as unique',
        'lists_for: -return int(2 ** np.clip(np.round(np.log2(max(rows, 1)) / 2), 4, 12)) / +return int(2 ** np.clip(np.round(np.log2(max(rows, 2)) / 2), 4, 12))':
            '0, 1 and 2 windows all clip to 16 lists (and no index is built from fewer than MIN_ROWS windows)',
        'build: -index = faiss.index_factory(dim, f"IVF{lists},PQ{dim // 8}", faiss.METRIC_INNER_PRODUCT) / +index = faiss.index_factory(dim, f"IVF{lists},PQ{dim // 8}", )':
            'the windows and queries are unit vectors: the nearest by distance are the most similar by inner product, and the candidates are ranked again by their exact cosine',
        'build: -rng = np.random.default_rng(0) / +rng = np.random.default_rng(None)':
            'which windows train the lists: any sample of the same size trains them as well, and the candidates are ranked again by their exact cosine',
        'build: -rng = np.random.default_rng(0) / +rng = np.random.default_rng(1)':
            'which windows train the lists: any sample of the same size trains them as well, and the candidates are ranked again by their exact cosine',
        'build: -share = min(1.0, lists * _SAMPLE_PER_LIST / max(live, 1)) / +share = min(1.0, lists * _SAMPLE_PER_LIST / max(live, 2))':
            'an index is built from MIN_ROWS windows at least: live is never under 2',
        'build: -replace=False))] / +replace=None))]':
            'replace=None is falsy: drawn without replacement, as with False',
        'extensible: -return set(entry["segments"]) <= names and live <= GROWTH * entry["trained"] / +return set(entry["segments"]) < names and live <= GROWTH * entry["trained"]':
            'asked only when a segment is not covered (prepare_approximate returns before): covered ⊆ segments is then covered ⊊ segments',
        '_written: -with open(staged, "rb+") as f: / +with open(staged, ) as f:':
            "fsync flushes the file's data through a read-only descriptor as well",
        'IndexSegment.similarities: -sims = np.nan_to_num(self.vectors @ query, copy=False, nan=-np.inf) / +sims = np.nan_to_num(self.vectors @ query, copy=None, nan=-np.inf)':
            'the product is a new array: its NaN replaced in place or in a copy, the same values',
        'IndexSegment.similarities: -sims = np.nan_to_num(self.vectors @ query, copy=False, nan=-np.inf) / +sims = np.nan_to_num(self.vectors @ query, nan=-np.inf)':
            'the product is a new array: its NaN replaced in place or in a copy, the same values',
        'IndexSegment.similarities: -sims = np.nan_to_num(self.vectors @ query, copy=False, nan=-np.inf) / +sims = np.nan_to_num(self.vectors @ query, copy=True, nan=-np.inf)':
            'the product is a new array: its NaN replaced in place or in a copy, the same values',
        'open_segment: -def open_segment(folder: Path, entry: dict, dim: int, verify: bool = False) -> IndexSegment: / +def open_segment(folder: Path, entry: dict, dim: int, verify: bool = True) -> IndexSegment:':
            'only a segment just written opens without naming verify: its files hash to the checksums just taken, so verifying costs time alone',
        'open_segment: -np.memmap(folder / f"{name}.rows", ROW, "r", shape=(rows,)), dict(entry["checksums"]), stats, / +np.memmap(folder / f"{name}.rows", ROW, "r", shape=None), dict(entry["checksums"]), stats,':
            "the file's size was checked to be rows × the row's size: mapped whole, it is those rows",
        'open_segment: -np.memmap(folder / f"{name}.rows", ROW, "r", shape=(rows,)), dict(entry["checksums"]), stats, / +np.memmap(folder / f"{name}.rows", ROW, "r", ), dict(entry["checksums"]), stats,':
            "the file's size was checked to be rows × the row's size: mapped whole, it is those rows",
        'IndexSegmentWriter.add: -(".rows", np.ascontiguousarray(rows, dtype=ROW))): / +(".rows", np.ascontiguousarray(rows, dtype=None))):':
            "every caller passes rows of ROW already (add_embedding's, or a segment's)",
        'IndexSegmentWriter.add: -(".rows", np.ascontiguousarray(rows, dtype=ROW))): / +(".rows", np.ascontiguousarray(rows, ))):':
            "every caller passes rows of ROW already (add_embedding's, or a segment's)",
        'IndexSegmentWriter.discard: -(self.folder / f"{self.name}{ext}.tmp").unlink(missing_ok=True) / +(self.folder / f"{self.name}{ext}.tmp").unlink(missing_ok=None)':
            'the writer opened both files when it was made: they are there to unlink',
        'IndexSegmentWriter.discard: -(self.folder / f"{self.name}{ext}.tmp").unlink(missing_ok=True) / +(self.folder / f"{self.name}{ext}.tmp").unlink(missing_ok=False)':
            'the writer opened both files when it was made: they are there to unlink',
        'merge: -step = _BLOCK // (dim * 4) / +step = _BLOCK // (dim * 5)':
            'rows copied in smaller blocks: the same rows, in the same order',
        '_folder_name: -if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"): / +if url.get_backend_name() == "sqlite" and url.database not in (None, "XXXX", ":memory:"):':
            'an in-memory database lives in one process: its folder is named the same there with or without the working directory in it',
        '_folder_name: -if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"): / +if url.get_backend_name() == "sqlite" and url.database not in (None, "", "XX:memory:XX"):':
            'an in-memory database lives in one process: its folder is named the same there with or without the working directory in it',
        '_folder_name: -if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"): / +if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":MEMORY:"):':
            'an in-memory database lives in one process: its folder is named the same there with or without the working directory in it',
        '_folder_name: -return hashlib.sha256(identity.encode()).hexdigest()[:24] / +return hashlib.sha256(identity.encode()).hexdigest()[:25]':
            'a name of 25 hex digits instead of 24: as stable and as unique',
        'WindowIndex.__init__: -approximate_above: int = 10_000_000): / +approximate_above: int = 10000001):':
            'the default is never taken: every caller passes Settings.search_approximate_above',
        'WindowIndex.__init__: -self.damaged: list[str] = []  # one line for each row left out, damaged in the database / +self.damaged: list[str] = None  # one line for each row left out, damaged in the database':
            'synced sets it before anyone reads it (rank reads it after nearest)',
        'WindowIndex.nearest: -query = np.asarray(query, dtype=np.float32) / +query = np.asarray(query, dtype=None)':
            'a float64 query ranks the float32 windows by the same cosines to within 1e-7, under the tolerance and what a user reads',
        'WindowIndex.nearest: -query = np.asarray(query, dtype=np.float32) / +query = np.asarray(query, )':
            'a float64 query ranks the float32 windows by the same cosines to within 1e-7, under the tolerance and what a user reads',
        'WindowIndex.nearest: -windows = self._current(segments, ann, query, limit, strict=False) / +windows = self._current(segments, ann, query, limit, strict=None)':
            'None is falsy: not strict, as False',
        'WindowIndex._current: -found = embeddings.embeddings_by_id(self.engine, self.model, self.revision, / +found = embeddings.embeddings_by_id(self.engine, self.model, None,':
            "ids are rows of the index's own revision: filtering them by revision again keeps them all",
        'WindowIndex._current: -and abs(float(stored.vectors[int(row["window"])] @ query) - similarity) < _TOLERANCE): / +and abs(float(stored.vectors[int(row["window"])] @ query) - similarity) <= _TOLERANCE):':
            'a cosine off by exactly the tolerance, in float arithmetic: no hit lands there',
        'WindowIndex.synced: -held_upto = manifest["state"]["upto"] if manifest else 0 / +held_upto = manifest["state"]["upto"] if manifest else 1':
            'without a manifest every row is compared from id 0, whatever the summary up to id 0 or 1 says',
        'WindowIndex.synced: -held, now = embeddings.embeddings_state(self.engine, self.model, self.revision, held_upto) / +held, now = embeddings.embeddings_state(self.engine, self.model, None, held_upto)':
            "the summary only decides whether to compare: with other revisions' rows in it, a change of theirs starts a comparison that finds nothing of this revision changed",
        'WindowIndex.prepare_approximate: -segments, _ = self.synced(approximate=False) / +segments, _ = self.synced(approximate=None)':
            "inside the build ahead, synced's approximate step finds the build under way (this call holds its lock) and answers None, or loads a usable index this call does not use",
        'WindowIndex.prepare_approximate: -segments, _ = self.synced(approximate=False) / +segments, _ = self.synced(approximate=True)':
            "inside the build ahead, synced's approximate step finds the build under way (this call holds its lock) and answers None, or loads a usable index this call does not use",
        'WindowIndex.prepare_approximate: -with FileLock(self.folder / "lock"): / +with FileLock(self.folder / "XXlockXX"):':
            'the manifest is replaced atomically: read without the lock it is whole, the one just committed or a newer one, and the commit reads it again under the lock',
        'WindowIndex.prepare_approximate: -with FileLock(self.folder / "lock"): / +with FileLock(self.folder / "LOCK"):':
            'the manifest is replaced atomically: read without the lock it is whole, the one just committed or a newer one, and the commit reads it again under the lock',
        'WindowIndex.prepare_approximate: -entry = manifest.get("approximate") if manifest else None / +entry = manifest.get("approximate") if (manifest) or True else None':
            'synced has just committed a manifest: there is one',
        'WindowIndex._update: -empty = np.array(manifest["empty"] if manifest else [], np.int64).reshape(-1, 2) / +empty = np.array(manifest["empty"] if manifest else [], None).reshape(-1, 2)':
            'integer pairs make an int64 array either way, and an empty one holds no value to compare',
        'WindowIndex._update: -empty = np.array(manifest["empty"] if manifest else [], np.int64).reshape(-1, 2) / +empty = np.array(manifest["empty"] if manifest else [], ).reshape(-1, 2)':
            'integer pairs make an int64 array either way, and an empty one holds no value to compare',
        'WindowIndex._update: -empty = np.array(manifest["empty"] if manifest else [], np.int64).reshape(-1, 2) / +empty = np.array(manifest["empty"] if manifest else [], np.int64).reshape(-2, 2)':
            'numpy reads any negative size as the one to infer',
        'WindowIndex._update: -ids, stamps = embeddings.embedding_stamps(self.engine, self.model, self.revision, after) / +ids, stamps = embeddings.embedding_stamps(self.engine, self.model, self.revision, )':
            "compared from the first row instead of past the summary's: the rows up to it are unchanged (the summary matched), so the same rows are found changed",
        'WindowIndex._fetched: -with ThreadPoolExecutor(os.cpu_count() or 1) as pool: / +with ThreadPoolExecutor(None) as pool:':
            'how many threads inflate the rows: the same rows, inflated sooner or later',
        'WindowIndex._fetched: -with ThreadPoolExecutor(os.cpu_count() or 1) as pool: / +with ThreadPoolExecutor(os.cpu_count() and 1) as pool:':
            'how many threads inflate the rows: the same rows, inflated sooner or later',
        'WindowIndex._fetched: -with ThreadPoolExecutor(os.cpu_count() or 1) as pool: / +with ThreadPoolExecutor(os.cpu_count() or 2) as pool:':
            'how many threads inflate the rows: the same rows, inflated sooner or later',
        'WindowIndex._fetched: -chunks = iter(embeddings.embedding_rows(self.engine, self.model, self.revision, ids)) / +chunks = iter(embeddings.embedding_rows(self.engine, self.model, None, ids))':
            "ids are rows of the index's own revision: filtering them by revision again keeps them all",
        'WindowIndex.compact: -chosen = _to_merge(self._open(manifest, False)[0]) if manifest else [] / +chosen = _to_merge(self._open(manifest, False)[0]) if (manifest) or True else []':
            'without a manifest there is no segment to choose either way',
        'WindowIndex.compact: -chosen = _to_merge(self._open(manifest, False)[0]) if manifest else [] / +chosen = _to_merge(self._open(manifest, None)[0]) if manifest else []':
            'None is falsy: not verified, as False',
        'WindowIndex.compact: -chosen = _to_merge(self._open(manifest, False)[0]) if manifest else [] / +chosen = _to_merge(self._open(manifest, True)[0]) if manifest else []':
            'a segment file written since its manifest entry has another ctime and is hashed either way; verify only rehashes files untouched since, which only the disk itself can damage',
        'WindowIndex.compact: -(self.folder / f"{merged.name}{ext}").unlink(missing_ok=True) / +(self.folder / f"{merged.name}{ext}").unlink(missing_ok=None)':
            'the merged files are spared by every other clean-up while the compaction holds its lock: they are there to unlink',
        'WindowIndex.compact: -(self.folder / f"{merged.name}{ext}").unlink(missing_ok=True) / +(self.folder / f"{merged.name}{ext}").unlink(missing_ok=False)':
            'the merged files are spared by every other clean-up while the compaction holds its lock: they are there to unlink',
        'WindowIndex.compact: -+ ([merged.entry()] if merged else [])}, compacting=True) / ++ ([merged.entry()] if merged else [])}, compacting=None)':
            "the merged segment is kept by name, in the manifest this commits; no other compaction's files exist while this one holds the compaction lock (and the clean-up asks for that lock anyway)",
        'WindowIndex.compact: -+ ([merged.entry()] if merged else [])}, compacting=True) / ++ ([merged.entry()] if merged else [])}, )':
            "the merged segment is kept by name, in the manifest this commits; no other compaction's files exist while this one holds the compaction lock (and the clean-up asks for that lock anyway)",
        'WindowIndex.compact: -+ ([merged.entry()] if merged else [])}, compacting=True) / ++ ([merged.entry()] if merged else [])}, compacting=False)':
            "the merged segment is kept by name, in the manifest this commits; no other compaction's files exist while this one holds the compaction lock (and the clean-up asks for that lock anyway)",
        'WindowIndex._commit: -path.unlink(missing_ok=True) / +path.unlink(missing_ok=None)':
            "every clean-up runs under the index's lock and nothing else deletes there: a file just listed is there to unlink",
        'WindowIndex._commit: -path.unlink(missing_ok=True) / +path.unlink(missing_ok=False)':
            "every clean-up runs under the index's lock and nothing else deletes there: a file just listed is there to unlink",
        '_top: -top = np.argpartition(-sims, limit - 1)[:limit] if len(sims) > limit else np.arange(len(sims)) / +top = np.argpartition(-sims, limit - 1)[:limit] if (len(sims) > limit) and False else np.arange(len(sims))':
            "every row's cosine sorted instead of the best partitioned out first: the same best rows, sorted alike",
        '_top: -top = np.argpartition(-sims, limit - 1)[:limit] if len(sims) > limit else np.arange(len(sims)) / +top = np.argpartition(-sims, limit - 1)[:limit] if len(sims) >= limit else np.arange(len(sims))':
            'partitioning exactly limit rows keeps them all, as taking them all does',
        '_top: -found += [(float(sims[i]), seg.rows[i]) for i in top if sims[i] > -np.inf] / +found += [(float(sims[i]), seg.rows[i]) for i in top if sims[i] >= -np.inf]':
            'a masked or NaN row ranked at -inf is refused by the check against SQL (its row is gone, changed, or of another cosine): the same hits, after one more pass',
    },
}


@dataclass
class Score:
    killed: int = 0
    survived: list[str] = field(default_factory=list)
    equivalent: int = 0
    timeout: int = 0
    untested: int = 0  # no test of the selection reaches the function

    @property
    def percent(self) -> float:
        counted = self.killed + self.timeout + len(self.survived) + self.untested
        return 100.0 * (self.killed + self.timeout) / counted if counted else 100.0


def prepare(name: str, module: Module) -> Path:
    """The module's working folder: the packages and tests linked in, and the mutmut
    configuration written for this module (mutmut reads it from ./pyproject.toml)."""
    work = ROOT / "mutants" / name
    work.mkdir(parents=True, exist_ok=True)
    for entry in (*PACKAGES, "tests"):
        link = work / entry
        if not link.exists():
            link.symlink_to(ROOT / entry, target_is_directory=True)
    settings = {
        "source_paths": list(PACKAGES),
        "only_mutate": list(module.files),
        "pytest_add_cli_args_test_selection": list(module.tests),
        "pytest_add_cli_args": ["-p", "no:cacheprovider", "-q", *(["-k", module.select] if module.select else [])],
    }
    text = "[tool.mutmut]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in settings.items())
    (work / "pyproject.toml").write_text(text)
    # mutmut keeps a verdict until the code changes, not when the tests do: start over.
    shutil.rmtree(work / "mutants", ignore_errors=True)
    return work


def run(name: str, module: Module, max_children: int) -> None:
    work = prepare(name, module)
    # The copy's packages, not the ones PYTHONPATH names, are what the tests must import.
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    # mutmut forks each mutant's run from a process whose tests started OpenMP's threads (faiss's
    # k-means, torch): GNU OpenMP does not survive a fork, and the child hangs until its timeout.
    env["OMP_NUM_THREADS"] = "1"
    print(f"{name}: mutating {', '.join(module.files)} (log: {work.relative_to(ROOT)}/run.log)", flush=True)
    with open(work / "run.log", "wb") as log:
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children), *module.only],
                       cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)


def _diff_key(work: Path, mutant: str) -> str:
    shown = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=work, capture_output=True,
                           text=True).stdout
    changed = [line[0] + line[1:].strip() for line in shown.splitlines()
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    function = re.sub(r"^x_|^xǁ", "", mutant.split(".")[-1].split("__mutmut_")[0]).replace("ǁ", ".")
    return f"{function}: {' / '.join(changed)}"


def score(name: str, module: Module) -> Score:
    """Counts from mutmut's records in the module's folder; survivors listed with their diffs."""
    work = ROOT / "mutants" / name
    found = Score()
    for meta in (work / "mutants").rglob("*.meta"):
        for mutant, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if module.only and not any(fnmatch(mutant, pattern) for pattern in module.only):
                continue
            if code in (1, 3):
                found.killed += 1
            elif code in (36, 24, -24, 152, 255):
                found.timeout += 1
            elif code in (5, 33):
                found.untested += 1
            elif code == 0:
                key = _diff_key(work, mutant)
                if key in EQUIVALENT.get(name, {}):
                    found.equivalent += 1
                else:
                    found.survived.append(f"{mutant}  {key}")
    return found


def table(scores: dict[str, Score]) -> str:
    lines = ["| module | killed | survived | equivalent (recorded) | timeout | no test | score |",
             "|---|---|---|---|---|---|---|"]
    for name, s in scores.items():
        lines.append(f"| {name} | {s.killed} | {len(s.survived)} | {s.equivalent} | {s.timeout} | {s.untested} "
                     f"| {s.percent:.0f} % |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=sorted(MODULES), help="a module to run (repeatable)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--report", action="store_true", help="print the table of the last runs, run nothing")
    parser.add_argument("--list", action="store_true", help="print the modules, their files and tests")
    args = parser.parse_args()
    names = args.module or list(MODULES)
    if args.list:
        for name in names:
            print(f"{name}: {' '.join(MODULES[name].files)}  <-  {' '.join(MODULES[name].tests)}")
        return
    if not args.report:
        for name in names:
            run(name, MODULES[name], args.max_children)
    scores = {name: score(name, MODULES[name]) for name in names if (ROOT / "mutants" / name / "mutants").exists()}
    for name, s in scores.items():
        for survivor in s.survived:
            print(f"survived ({name}): {survivor}")
    print(table(scores))


if __name__ == "__main__":
    main()
