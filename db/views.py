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

# Version 2 (migration 0006): the scores are arrays in label order, one row per window (segment)
# and per file (labeling), which the views unnest; same columns, types and meaning as version 1.
# On PostgreSQL the rank-1 rows come from the kept top-label columns (indexed), the others from
# the arrays, in a UNION ALL: a query for rank = 1 plans the first branch only, since the second's
# `n.rank > 1` contradicts it (constraint_exclusion = on, which 0006 sets on the database), and
# the first's `label = ...` uses the index. Ranks break ties by label order, as store._best.
_ORDER_PG = """CROSS JOIN LATERAL (SELECT array_agg(u.i ORDER BY u.score DESC, u.i) AS ord
                   FROM unnest({alias}.scores) WITH ORDINALITY u(score, i)) o
CROSS JOIN LATERAL generate_series(2, cardinality({alias}.scores)) n(rank)
WHERE n.rank > 1"""

FILE_LABELS_V2_POSTGRESQL = """
CREATE OR REPLACE VIEW file_labels AS
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       l.top_label AS label, l.top_score AS score, l.top_similarity AS similarity, 1 AS rank,
       l.created_at AS labeled_at
FROM labeling l
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
UNION ALL
SELECT f.uri, l.job_id, l.model, t.name, t.content_hash,
       t.labels[o.ord[n.rank]], l.scores[o.ord[n.rank]], l.similarities[o.ord[n.rank]], n.rank, l.created_at
FROM labeling l
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
""" + _ORDER_PG.format(alias="l") + "\n"

SEGMENT_LABELS_V2_POSTGRESQL = """
CREATE OR REPLACE VIEW segment_labels AS
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       s.start_s, s.end_s, s.top_label AS label, s.top_score::double precision AS score,
       s.top_similarity::double precision AS similarity, 1 AS rank, l.created_at AS labeled_at
FROM segment s
JOIN labeling l ON l.id = s.labeling_id
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
UNION ALL
SELECT f.uri, l.job_id, l.model, t.name, t.content_hash, s.start_s, s.end_s,
       t.labels[o.ord[n.rank]], s.scores[o.ord[n.rank]]::double precision,
       s.similarities[o.ord[n.rank]]::double precision, n.rank, l.created_at
FROM segment s
JOIN labeling l ON l.id = s.labeling_id
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
""" + _ORDER_PG.format(alias="s") + "\n"

FILE_LABELS_V2_SQLITE = """
CREATE VIEW file_labels AS
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       n.value AS label, sc.value AS score, si.value AS similarity,
       row_number() OVER (PARTITION BY l.id ORDER BY sc.value DESC, sc.key) AS rank, l.created_at AS labeled_at
FROM labeling l
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
JOIN json_each(l.scores) sc
JOIN json_each(l.similarities) si ON si.key = sc.key
JOIN json_each(t.labels) n ON n.key = sc.key
"""

SEGMENT_LABELS_V2_SQLITE = """
CREATE VIEW segment_labels AS
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       s.start_s, s.end_s, n.value AS label, sc.value AS score, si.value AS similarity,
       row_number() OVER (PARTITION BY s.labeling_id, s."window" ORDER BY sc.value DESC, sc.key) AS rank,
       l.created_at AS labeled_at
FROM segment s
JOIN labeling l ON l.id = s.labeling_id
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
JOIN json_each(s.scores) sc
JOIN json_each(s.similarities) si ON si.key = sc.key
JOIN json_each(t.labels) n ON n.key = sc.key
"""

# The model's decision is now the kept top label of the file (rank 1, as before).
REVIEWED_LABELS_V2 = """
CREATE VIEW reviewed_labels AS
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       CASE WHEN r.id IS NULL THEN l.top_label WHEN r.verdict = 'reject' THEN NULL ELSE r.label END AS label,
       CASE WHEN r.id IS NULL THEN 'model' ELSE 'human' END AS source,
       l.top_label AS decision, r.verdict, r.reviewer, r.reviewed_at
FROM labeling l
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
LEFT JOIN review r ON r.id = (
    SELECT MAX(c.id) FROM review c
    WHERE c.file_id = l.file_id AND c.model = l.model AND c.taxonomy_id = l.taxonomy_id AND c.undone_at IS NULL)
"""

V2 = {"postgresql": {"file_labels": FILE_LABELS_V2_POSTGRESQL, "segment_labels": SEGMENT_LABELS_V2_POSTGRESQL,
                     "reviewed_labels": REVIEWED_LABELS_V2.replace("CREATE VIEW", "CREATE OR REPLACE VIEW")},
      "sqlite": {"file_labels": FILE_LABELS_V2_SQLITE, "segment_labels": SEGMENT_LABELS_V2_SQLITE,
                 "reviewed_labels": REVIEWED_LABELS_V2}}
