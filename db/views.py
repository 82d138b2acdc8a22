"""The SQL views: soundtag's public, documented query interface.

Each view's SQL is frozen per schema version; a change is a new constant plus a migration that
replaces the view, so queries people saved keep working or break loudly, never silently.
"""

from __future__ import annotations

FILES_V1 = """
CREATE VIEW files AS
SELECT f.uri, f.status, f.error, f.duration_s, f.sample_rate, f.channels,
       f.content_hash, f.size_bytes, f.fingerprint, f.truth, f.created_at, f.updated_at
FROM file f
"""

FILE_LABELS_V1 = """
CREATE VIEW file_labels AS
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       s.label, s.score, s.similarity, s.rank, l.created_at AS labeled_at
FROM label_score s
JOIN labeling l ON l.id = s.labeling_id
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
"""

SEGMENT_LABELS_V1 = """
CREATE VIEW segment_labels AS
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       s.start_s, s.end_s, s.label, s.score, s.similarity, s.rank, l.created_at AS labeled_at
FROM segment_score s
JOIN labeling l ON l.id = s.labeling_id
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
"""

V1 = {"files": FILES_V1, "file_labels": FILE_LABELS_V1, "segment_labels": SEGMENT_LABELS_V1}

# Counts are correlated subqueries (one index range each on ix_job_file_job_status) rather than
# a grouped join, so that `... ORDER BY created_at DESC LIMIT 20` counts only those 20 jobs.
JOBS_V1 = """
CREATE VIEW jobs AS
SELECT j.id AS job_id, j.kind, j.state, j.error, j.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       j.sources,
       (SELECT COUNT(*) FROM job_file c WHERE c.job_id = j.id) AS total,
       (SELECT COUNT(*) FROM job_file c WHERE c.job_id = j.id AND c.status = 'done') AS done,
       (SELECT COUNT(*) FROM job_file c WHERE c.job_id = j.id AND c.status = 'failed') AS failed,
       (SELECT COUNT(*) FROM job_file c WHERE c.job_id = j.id AND c.status = 'queued') AS queued,
       (SELECT COUNT(*) FROM job_file c WHERE c.job_id = j.id AND c.status = 'skipped') AS skipped,
       (SELECT COUNT(*) FROM job_file c WHERE c.job_id = j.id AND c.status = 'cancelled') AS cancelled,
       j.created_at, j.finished_at
FROM job j
JOIN taxonomy t ON t.id = j.taxonomy_id
"""

# Every verdict ever given, `current` marking the one in force for its file, model and taxonomy:
# the latest that was not undone. accept and reject name the model's decision they judged,
# correct the reviewer's label.
REVIEWS_V1 = """
CREATE VIEW reviews AS
SELECT f.uri, r.job_id AS run_id, r.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       r.label, r.verdict, r.reviewer, r.reviewed_at, r.undone_at,
       CASE WHEN r.undone_at IS NULL AND NOT EXISTS (
           SELECT 1 FROM review n
           WHERE n.file_id = r.file_id AND n.model = r.model AND n.taxonomy_id = r.taxonomy_id
             AND n.undone_at IS NULL AND n.id > r.id) THEN 1 ELSE 0 END AS "current"
FROM review r
JOIN file f ON f.id = r.file_id
JOIN taxonomy t ON t.id = r.taxonomy_id
"""

# Each labeled file's final label per model and taxonomy: the verdict in force where a person gave
# one (accept: the decision accepted; correct: the reviewer's label; reject: no label), the
# model's decision otherwise. The model's decision is the rank-1 label, as in
# db.store.DECISION_RANK; a change to it is a new version of this view.
REVIEWED_LABELS_V1 = """
CREATE VIEW reviewed_labels AS
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       CASE WHEN r.id IS NULL THEN s.label WHEN r.verdict = 'reject' THEN NULL ELSE r.label END AS label,
       CASE WHEN r.id IS NULL THEN 'model' ELSE 'human' END AS source,
       s.label AS decision, r.verdict, r.reviewer, r.reviewed_at
FROM labeling l
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
LEFT JOIN label_score s ON s.labeling_id = l.id AND s.rank = 1
LEFT JOIN review r ON r.id = (
    SELECT MAX(c.id) FROM review c
    WHERE c.file_id = l.file_id AND c.model = l.model AND c.taxonomy_id = l.taxonomy_id AND c.undone_at IS NULL)
"""
