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
# model's decision otherwise. The model's decision is the rank-1 label; a change to it is a new
# version of this view.
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

# Decisions (schema 0005). Built on the public views file_labels and segment_labels joined with
# the decision policy (taxonomy_label, and taxonomy_member for the hierarchy), so they follow
# whatever tables lie under those two views. A label passes when its cosine (similarity) reaches
# its threshold (the label's, else the taxonomy's); with no threshold only the rank-1 label
# passes, as before thresholds existed. A node is a label or a group: its score is the sum of its
# members' softmax scores, its similarity their maximum, its rank their best.
_FILE_NODES = """
SELECT fl.uri, fl.run_id, fl.model, fl.taxonomy, fl.taxonomy_hash, t.id AS taxonomy_id, m.node AS label,
       SUM(fl.score) AS score, MAX(fl.similarity) AS similarity, MIN(fl.rank) AS best_rank
FROM file_labels fl
JOIN taxonomy t ON t.content_hash = fl.taxonomy_hash
JOIN taxonomy_member m ON m.taxonomy_id = t.id AND m.label = fl.label
GROUP BY fl.uri, fl.run_id, fl.model, fl.taxonomy, fl.taxonomy_hash, t.id, m.node
"""

_PASSES = """NOT p.background AND ((p.threshold IS NULL AND {rank} = 1)
                          OR (p.threshold IS NOT NULL AND {similarity} >= p.threshold))"""

# Every label (and group) of a file that passes its threshold: several per file, or none.
FILE_TAGS_V1 = f"""
CREATE VIEW file_tags AS
WITH node AS ({_FILE_NODES})
SELECT n.uri, n.run_id, n.model, n.taxonomy, n.taxonomy_hash, n.label, n.score, n.similarity, p.threshold
FROM node n
JOIN taxonomy_label p ON p.taxonomy_id = n.taxonomy_id AND p.label = n.label
WHERE {_PASSES.format(rank="n.best_rank", similarity="n.similarity")}
"""

SEGMENT_TAGS_V1 = f"""
CREATE VIEW segment_tags AS
WITH node AS (
    SELECT sl.uri, sl.run_id, sl.model, sl.taxonomy, sl.taxonomy_hash, t.id AS taxonomy_id, sl.start_s, sl.end_s,
           m.node AS label, SUM(sl.score) AS score, MAX(sl.similarity) AS similarity, MIN(sl.rank) AS best_rank
    FROM segment_labels sl
    JOIN taxonomy t ON t.content_hash = sl.taxonomy_hash
    JOIN taxonomy_member m ON m.taxonomy_id = t.id AND m.label = sl.label
    GROUP BY sl.uri, sl.run_id, sl.model, sl.taxonomy, sl.taxonomy_hash, t.id, sl.start_s, sl.end_s, m.node)
SELECT n.uri, n.run_id, n.model, n.taxonomy, n.taxonomy_hash, n.start_s, n.end_s, n.label, n.score, n.similarity,
       p.threshold
FROM node n
JOIN taxonomy_label p ON p.taxonomy_id = n.taxonomy_id AND p.label = n.label
WHERE {_PASSES.format(rank="n.best_rank", similarity="n.similarity")}
"""

# One row per labeled file (implied_by NULL): the passing non-background label of the highest
# score (ties: higher similarity, then name), or label NULL and abstained 1 when none passes or
# the rank-1 label is a background label. The decided label's ancestors follow as rows of their
# own (implied_by: the decided label) with their rolled-up score and similarity.
FILE_DECISIONS_V1 = f"""
CREATE VIEW file_decisions AS
WITH node AS ({_FILE_NODES}),
top AS (
    SELECT fl.uri, fl.run_id, fl.model, fl.taxonomy, fl.taxonomy_hash, t.id AS taxonomy_id, p.background
    FROM file_labels fl
    JOIN taxonomy t ON t.content_hash = fl.taxonomy_hash
    JOIN taxonomy_label p ON p.taxonomy_id = t.id AND p.label = fl.label
    WHERE fl.rank = 1),
passing AS (
    SELECT fl.uri, fl.model, fl.taxonomy_hash, fl.label, fl.score, fl.similarity,
           ROW_NUMBER() OVER (PARTITION BY fl.uri, fl.model, fl.taxonomy_hash
                              ORDER BY fl.score DESC, fl.similarity DESC, fl.label) AS pick
    FROM file_labels fl
    JOIN taxonomy t ON t.content_hash = fl.taxonomy_hash
    JOIN taxonomy_label p ON p.taxonomy_id = t.id AND p.label = fl.label
    WHERE {_PASSES.format(rank="fl.rank", similarity="fl.similarity")}),
decided AS (
    SELECT f.uri, f.run_id, f.model, f.taxonomy, f.taxonomy_hash, f.taxonomy_id,
           CASE WHEN f.background THEN NULL ELSE b.label END AS label,
           CASE WHEN f.background THEN NULL ELSE b.score END AS score,
           CASE WHEN f.background THEN NULL ELSE b.similarity END AS similarity
    FROM top f
    LEFT JOIN passing b ON b.uri = f.uri AND b.model = f.model AND b.taxonomy_hash = f.taxonomy_hash AND b.pick = 1)
SELECT d.uri, d.run_id, d.model, d.taxonomy, d.taxonomy_hash, d.label, d.score, d.similarity,
       CASE WHEN d.label IS NULL THEN 1 ELSE 0 END AS abstained, CAST(NULL AS TEXT) AS implied_by
FROM decided d
UNION ALL
SELECT d.uri, d.run_id, d.model, d.taxonomy, d.taxonomy_hash, n.label, n.score, n.similarity, 0, d.label
FROM decided d
JOIN taxonomy_member m ON m.taxonomy_id = d.taxonomy_id AND m.label = d.label AND m.node <> d.label
JOIN node n ON n.uri = d.uri AND n.model = d.model AND n.taxonomy_hash = d.taxonomy_hash AND n.label = m.node
"""

# Gaps and islands: windows of a file tagged with the same label whose start lies within the
# reach of the earlier ones (adjacent or overlapping) form one event. The small tolerance keeps
# float window bounds that should touch (10.000000001 after 10.0) together.
EVENTS_V1 = """
CREATE VIEW events AS
WITH tagged AS (
    SELECT uri, run_id, model, taxonomy, taxonomy_hash, label, start_s, end_s, similarity,
           MAX(end_s) OVER (PARTITION BY uri, model, taxonomy_hash, label ORDER BY start_s, end_s
                            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
    FROM segment_tags),
numbered AS (
    SELECT uri, run_id, model, taxonomy, taxonomy_hash, label, start_s, end_s, similarity,
           SUM(CASE WHEN reach IS NULL OR start_s > reach + 0.000001 THEN 1 ELSE 0 END)
               OVER (PARTITION BY uri, model, taxonomy_hash, label ORDER BY start_s, end_s
                     ROWS UNBOUNDED PRECEDING) AS event
    FROM tagged)
SELECT uri, run_id, model, taxonomy, taxonomy_hash, label, MIN(start_s) AS start_s, MAX(end_s) AS end_s,
       MAX(similarity) AS max_similarity
FROM numbered
GROUP BY uri, run_id, model, taxonomy, taxonomy_hash, label, event
"""

DECISIONS_V1 = {"file_tags": FILE_TAGS_V1, "segment_tags": SEGMENT_TAGS_V1, "file_decisions": FILE_DECISIONS_V1,
                "events": EVENTS_V1}

# reviewed_labels again (schema 0005): the model's decision is file_decisions', as the review page
# shows it, so a file that abstains has no decision to accept.
REVIEWED_LABELS_V2 = """
CREATE VIEW reviewed_labels AS
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       CASE WHEN r.id IS NULL THEN d.label WHEN r.verdict = 'reject' THEN NULL ELSE r.label END AS label,
       CASE WHEN r.id IS NULL THEN 'model' ELSE 'human' END AS source,
       d.label AS decision, r.verdict, r.reviewer, r.reviewed_at
FROM labeling l
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
LEFT JOIN file_decisions d ON d.uri = f.uri AND d.model = l.model AND d.taxonomy_hash = t.content_hash
     AND d.implied_by IS NULL
LEFT JOIN review r ON r.id = (
    SELECT MAX(c.id) FROM review c
    WHERE c.file_id = l.file_id AND c.model = l.model AND c.taxonomy_id = l.taxonomy_id AND c.undone_at IS NULL)
"""


# Version 2 (migration 0006): the scores are arrays in label order, one row per window (segment)
# and per file (labeling), which the views unnest; same columns, types and meaning as version 1.
# On PostgreSQL the rank-1 rows come from the kept top-label columns (indexed), the others from
# the arrays, in a UNION ALL: a query for rank = 1 plans the first branch only, since the second's
# `n.rank > 1` contradicts it (constraint_exclusion = on, which 0006 sets on the database), and
# the first's `label = ...` uses the index. Ranks break ties by label order, as db.results.best.
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

V2 = {"postgresql": {"file_labels": FILE_LABELS_V2_POSTGRESQL, "segment_labels": SEGMENT_LABELS_V2_POSTGRESQL},
      "sqlite": {"file_labels": FILE_LABELS_V2_SQLITE, "segment_labels": SEGMENT_LABELS_V2_SQLITE}}


# Version 3 (migration 0007): a window keeps its cosines only; its scores are their softmax at the
# labeling's logit scale (the model's exp(logit_scale_a)), computed here in double precision from
# the float4 cosines, as model/clap.score computes them: exp(scale · (cosine − best cosine)) over
# the window's sum of the same. Same columns, types and meaning as version 2; ranks follow the
# cosines, which order the scores alike (ties by label order); the rank-1 row keeps the stored
# top score. Only segment_labels changes: the decision views read it by name.
SEGMENT_LABELS_V3_POSTGRESQL = """
CREATE OR REPLACE VIEW segment_labels AS
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       s.start_s, s.end_s, s.top_label AS label, s.top_score::double precision AS score,
       s.top_similarity::double precision AS similarity, 1 AS rank, l.created_at AS labeled_at
FROM segment s
JOIN labeling l ON l.id = s.labeling_id
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
UNION ALL
SELECT f.uri, l.job_id, l.model, t.name, t.content_hash, s.start_s, s.end_s, t.labels[o.ord[n.rank]],
       exp(l.logit_scale * (s.similarities[o.ord[n.rank]]::double precision - s.top_similarity)) / o.total,
       s.similarities[o.ord[n.rank]]::double precision, n.rank, l.created_at
FROM segment s
JOIN labeling l ON l.id = s.labeling_id
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
CROSS JOIN LATERAL (SELECT array_agg(u.i ORDER BY u.similarity DESC, u.i) AS ord,
                           sum(exp(l.logit_scale * (u.similarity::double precision - s.top_similarity))) AS total
                    FROM unnest(s.similarities) WITH ORDINALITY u(similarity, i)) o
CROSS JOIN LATERAL generate_series(2, cardinality(s.similarities)) n(rank)
WHERE n.rank > 1
"""

SEGMENT_LABELS_V3_SQLITE = """
CREATE VIEW segment_labels AS
SELECT uri, run_id, model, taxonomy, taxonomy_hash, start_s, end_s, label,
       CASE WHEN rank = 1 THEN top_score ELSE exp(logit_scale * (similarity - top_similarity)) / total END AS score,
       similarity, rank, labeled_at
FROM (
    SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
           s.start_s, s.end_s, n.value AS label, si.value AS similarity, s.top_score, s.top_similarity,
           l.logit_scale, l.created_at AS labeled_at,
           row_number() OVER (PARTITION BY s.labeling_id, s."window" ORDER BY si.value DESC, si.key) AS rank,
           sum(exp(l.logit_scale * (si.value - s.top_similarity))) OVER (PARTITION BY s.labeling_id, s."window")
               AS total
    FROM segment s
    JOIN labeling l ON l.id = s.labeling_id
    JOIN file f ON f.id = l.file_id
    JOIN taxonomy t ON t.id = l.taxonomy_id
    JOIN json_each(s.similarities) si
    JOIN json_each(t.labels) n ON n.key = si.key)
"""

V3 = {"postgresql": SEGMENT_LABELS_V3_POSTGRESQL, "sqlite": SEGMENT_LABELS_V3_SQLITE}


# Version 4 (migration 0008): a labeling without a logit scale holds a head's output (soundtag
# train), whose windows' scores are their probabilities, kept as the similarities: one sigmoid per
# label, not a softmax across them. Same columns, types and meaning as version 3 otherwise.
SEGMENT_LABELS_V4_POSTGRESQL = SEGMENT_LABELS_V3_POSTGRESQL.replace(
    "exp(l.logit_scale * (s.similarities[o.ord[n.rank]]::double precision - s.top_similarity)) / o.total,",
    "COALESCE(exp(l.logit_scale * (s.similarities[o.ord[n.rank]]::double precision - s.top_similarity)) / o.total,\n"
    "                s.similarities[o.ord[n.rank]]::double precision),")

SEGMENT_LABELS_V4_SQLITE = SEGMENT_LABELS_V3_SQLITE.replace(
    "CASE WHEN rank = 1 THEN top_score ELSE",
    "CASE WHEN rank = 1 THEN top_score WHEN logit_scale IS NULL THEN similarity ELSE")

V4 = {"postgresql": SEGMENT_LABELS_V4_POSTGRESQL, "sqlite": SEGMENT_LABELS_V4_SQLITE}


# Segment verdicts (migration 0009): a verdict may judge a segment of a file (a window or an
# event), its bounds in start_s and end_s; a file verdict has them NULL. A verdict is in force for
# its file *and bounds*: a segment's verdict neither supersedes nor is superseded by the file's.
# reviews: version 1's columns, then start_s and end_s.
# No verdict given after r on the same file and bounds, model and taxonomy is in force.
_LATEST = """NOT EXISTS (
           SELECT 1 FROM review n
           WHERE n.file_id = r.file_id AND n.model = r.model AND n.taxonomy_id = r.taxonomy_id
             AND COALESCE(n.start_s, -1) = COALESCE(r.start_s, -1) AND COALESCE(n.end_s, -1) = COALESCE(r.end_s, -1)
             AND n.undone_at IS NULL AND n.id > r.id)"""

REVIEWS_V2 = f"""
CREATE VIEW reviews AS
SELECT f.uri, r.job_id AS run_id, r.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       r.label, r.verdict, r.reviewer, r.reviewed_at, r.undone_at,
       CASE WHEN r.undone_at IS NULL AND {_LATEST} THEN 1 ELSE 0 END AS "current",
       r.start_s, r.end_s
FROM review r
JOIN file f ON f.id = r.file_id
JOIN taxonomy t ON t.id = r.taxonomy_id
"""

# reviewed_labels version 3: version 2's rows (one per labeled file, start_s and end_s NULL, its
# label from file verdicts only), then one row per segment verdict in force, with its bounds: the
# segment's final label (accept: the label judged; correct: the reviewer's; reject: none), source
# 'human', decision the label judged (NULL for correct, whose row keeps the reviewer's label only).
# A query for files adds `WHERE start_s IS NULL`.
REVIEWED_LABELS_V3 = f"""
CREATE VIEW reviewed_labels AS
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       CASE WHEN r.id IS NULL THEN d.label WHEN r.verdict = 'reject' THEN NULL ELSE r.label END AS label,
       CASE WHEN r.id IS NULL THEN 'model' ELSE 'human' END AS source,
       d.label AS decision, r.verdict, r.reviewer, r.reviewed_at,
       CAST(NULL AS FLOAT) AS start_s, CAST(NULL AS FLOAT) AS end_s
FROM labeling l
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
LEFT JOIN file_decisions d ON d.uri = f.uri AND d.model = l.model AND d.taxonomy_hash = t.content_hash
     AND d.implied_by IS NULL
LEFT JOIN review r ON r.id = (
    SELECT MAX(c.id) FROM review c
    WHERE c.file_id = l.file_id AND c.model = l.model AND c.taxonomy_id = l.taxonomy_id AND c.undone_at IS NULL
      AND c.start_s IS NULL)
UNION ALL
SELECT f.uri, r.job_id, r.model, t.name, t.content_hash,
       CASE WHEN r.verdict = 'reject' THEN NULL ELSE r.label END, 'human',
       CASE WHEN r.verdict = 'correct' THEN NULL ELSE r.label END, r.verdict, r.reviewer, r.reviewed_at,
       r.start_s, r.end_s
FROM review r
JOIN file f ON f.id = r.file_id
JOIN taxonomy t ON t.id = r.taxonomy_id
WHERE r.start_s IS NOT NULL AND r.undone_at IS NULL AND {_LATEST}
"""


# reviewed_labels version 4 (migration 0012): a person's verdict is a fact about the recording, so
# every labeling of the file shows it (a head's relabel of the job included), not only the one it
# was given under: a verdict speaks for a labeling when it was given under that labeling's model and
# taxonomy, or when it says what the recording is (accept, correct) with a label that the
# labeling's taxonomy has (a leaf of taxonomy_label). A reject stays with the model it judged. The
# verdict in force is the latest that speaks, per file and bounds, as in db.reviews.in_force.
# Same columns and meaning as version 3; verdict and reviewer are as given (a correct given under
# another taxonomy stays a correct, even where this labeling decided the same label).
_SPEAKS = """((({v}.model = l.model AND {v}.taxonomy_id = l.taxonomy_id)
            OR ({v}.verdict IN ('accept', 'correct') AND EXISTS (
                SELECT 1 FROM taxonomy_label p
                WHERE p.taxonomy_id = l.taxonomy_id AND p.label = {v}.label AND NOT p.is_group))))"""

REVIEWED_LABELS_V4 = f"""
CREATE VIEW reviewed_labels AS
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       CASE WHEN r.id IS NULL THEN d.label WHEN r.verdict = 'reject' THEN NULL ELSE r.label END AS label,
       CASE WHEN r.id IS NULL THEN 'model' ELSE 'human' END AS source,
       d.label AS decision, r.verdict, r.reviewer, r.reviewed_at,
       CAST(NULL AS FLOAT) AS start_s, CAST(NULL AS FLOAT) AS end_s
FROM labeling l
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
LEFT JOIN file_decisions d ON d.uri = f.uri AND d.model = l.model AND d.taxonomy_hash = t.content_hash
     AND d.implied_by IS NULL
LEFT JOIN review r ON r.id = (
    SELECT MAX(c.id) FROM review c
    WHERE c.file_id = l.file_id AND c.undone_at IS NULL AND c.start_s IS NULL AND {_SPEAKS.format(v="c")})
UNION ALL
SELECT f.uri, l.job_id, l.model, t.name, t.content_hash,
       CASE WHEN r.verdict = 'reject' THEN NULL ELSE r.label END, 'human',
       CASE WHEN r.verdict = 'correct' THEN NULL ELSE r.label END, r.verdict, r.reviewer, r.reviewed_at,
       r.start_s, r.end_s
FROM labeling l
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
JOIN review r ON r.file_id = l.file_id
WHERE r.start_s IS NOT NULL AND r.undone_at IS NULL AND {_SPEAKS.format(v="r")}
  AND NOT EXISTS (
      SELECT 1 FROM review n
      WHERE n.file_id = r.file_id AND n.undone_at IS NULL AND n.id > r.id
        AND COALESCE(n.start_s, -1) = COALESCE(r.start_s, -1) AND COALESCE(n.end_s, -1) = COALESCE(r.end_s, -1)
        AND {_SPEAKS.format(v="n")})
"""


# When and where (migration 0013): files gains recorded_at (UTC, NULL when nothing says) and
# site, after version 1's columns.
FILES_V2 = """
CREATE VIEW files AS
SELECT f.uri, f.status, f.error, f.duration_s, f.sample_rate, f.channels,
       f.content_hash, f.size_bytes, f.fingerprint, f.truth, f.created_at, f.updated_at, f.recorded_at, f.site
FROM file f
"""

# detections: one row per tagged window (segment_tags), with its file's site and its absolute
# start and end (UTC; NULL when the recording's time is unknown).
_DETECTIONS = """
CREATE VIEW detections AS
SELECT st.uri, st.run_id, st.model, st.taxonomy, st.taxonomy_hash, f.site, st.label, st.score, st.similarity,
       st.start_s, st.end_s, {starts} AS starts_at, {ends} AS ends_at
FROM segment_tags st
JOIN file f ON f.uri = st.uri
"""
DETECTIONS_V1_POSTGRESQL = _DETECTIONS.format(starts="f.recorded_at + st.start_s * INTERVAL '1 second'",
                                              ends="f.recorded_at + st.end_s * INTERVAL '1 second'")
DETECTIONS_V1_SQLITE = _DETECTIONS.format(
    starts="strftime('%Y-%m-%d %H:%M:%f', f.recorded_at, printf('%+.6f seconds', st.start_s))",
    ends="strftime('%Y-%m-%d %H:%M:%f', f.recorded_at, printf('%+.6f seconds', st.end_s))")

# detections_by_hour: per model, taxonomy, site, label and hour of the clock (UTC) in which some
# labeled recording of known time ran: the windows tagged that start in it, their minutes, and the
# minutes of audio recorded in it (the effort: each recording's overlap with the hour). A rate is
# windows / recorded_minutes, so an hour recorded for 10 minutes weighs as 10 minutes, not 60.
# Every label of the taxonomy (not background) has a row for every such hour, 0 where none tagged.
_BY_HOUR = """
CREATE VIEW detections_by_hour AS
WITH {recursive}labeled AS (
    SELECT DISTINCT l.model, t.id AS taxonomy_id, t.name AS taxonomy, t.content_hash AS taxonomy_hash, f.id AS file_id,
           f.site, {starts} AS starts, {ends} AS ends
    FROM labeling l
    JOIN file f ON f.id = l.file_id
    JOIN taxonomy t ON t.id = l.taxonomy_id
    WHERE f.recorded_at IS NOT NULL AND f.duration_s > 0),
{hours},
effort AS (
    SELECT model, taxonomy_id, taxonomy, taxonomy_hash, site, hour, SUM({overlap}) AS recorded_minutes
    FROM hours
    GROUP BY model, taxonomy_id, taxonomy, taxonomy_hash, site, hour),
tagged AS (
    SELECT model, taxonomy_hash, site, label, {hour_of_start} AS hour, COUNT(*) AS windows,
           SUM(end_s - start_s) / 60.0 AS detected_minutes
    FROM detections
    WHERE starts_at IS NOT NULL
    GROUP BY model, taxonomy_hash, site, label, {hour_of_start})
SELECT e.model, e.taxonomy, e.taxonomy_hash, e.site, p.label, e.hour, COALESCE(d.windows, 0) AS windows,
       COALESCE(d.detected_minutes, 0) AS detected_minutes, e.recorded_minutes
FROM effort e
JOIN taxonomy_label p ON p.taxonomy_id = e.taxonomy_id AND NOT p.background
LEFT JOIN tagged d ON d.model = e.model AND d.taxonomy_hash = e.taxonomy_hash AND d.site {same} e.site
     AND d.label = p.label AND d.hour = e.hour
"""
DETECTIONS_BY_HOUR_V1_POSTGRESQL = _BY_HOUR.format(
    recursive="", starts="f.recorded_at AT TIME ZONE 'UTC'",
    ends="(f.recorded_at AT TIME ZONE 'UTC') + f.duration_s * INTERVAL '1 second'",
    hours="""hours AS (
    SELECT labeled.*, h.hour
    FROM labeled
    CROSS JOIN LATERAL generate_series(date_trunc('hour', starts), ends - INTERVAL '1 microsecond',
                                       INTERVAL '1 hour') h(hour))""",
    overlap="EXTRACT(EPOCH FROM LEAST(hour + INTERVAL '1 hour', ends) - GREATEST(hour, starts)) / 60.0",
    hour_of_start="date_trunc('hour', starts_at AT TIME ZONE 'UTC')", same="IS NOT DISTINCT FROM")
DETECTIONS_BY_HOUR_V1_SQLITE = _BY_HOUR.format(
    recursive="RECURSIVE ", starts="strftime('%Y-%m-%d %H:%M:%f', f.recorded_at)",
    ends="strftime('%Y-%m-%d %H:%M:%f', f.recorded_at, printf('%+.6f seconds', f.duration_s))",
    hours="""hours AS (
    SELECT model, taxonomy_id, taxonomy, taxonomy_hash, file_id, site, starts, ends,
           strftime('%Y-%m-%d %H:00:00', starts) AS hour
    FROM labeled
    UNION ALL
    SELECT model, taxonomy_id, taxonomy, taxonomy_hash, file_id, site, starts, ends, datetime(hour, '+1 hour')
    FROM hours
    WHERE datetime(hour, '+1 hour') < ends)""",
    # julianday's days are doubles: rounded to the millisecond, a 10-minute overlap is 10, not 9.9999994.
    overlap="ROUND((MIN(julianday(hour, '+1 hour'), julianday(ends)) - MAX(julianday(hour), julianday(starts)))"
            " * 86400.0, 3) / 60.0",
    hour_of_start="strftime('%Y-%m-%d %H:00:00', starts_at)", same="IS")

# estimates: the latest of what `soundtag estimate` computed for each job, label and site (NULL:
# all sites), with 95% intervals (soundtag/estimate.py).
ESTIMATES_V1 = """
CREATE VIEW estimates AS
SELECT e.job_id AS run_id, j.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash, e.label, e.site,
       e.windows, e.verdicts, e.prevalence, e.prevalence_low, e.prevalence_high, e.precision, e.precision_low,
       e.precision_high, e.recall, e.recall_low, e.recall_high, e.computed_at
FROM estimate e
JOIN job j ON j.id = e.job_id
JOIN taxonomy t ON t.id = j.taxonomy_id
WHERE NOT EXISTS (
    SELECT 1 FROM estimate n
    WHERE n.job_id = e.job_id AND n.label = e.label AND COALESCE(n.site, '') = COALESCE(e.site, '') AND n.id > e.id)
"""

WHEN_AND_WHERE_V1 = {
    "postgresql": {"detections": DETECTIONS_V1_POSTGRESQL, "detections_by_hour": DETECTIONS_BY_HOUR_V1_POSTGRESQL},
    "sqlite": {"detections": DETECTIONS_V1_SQLITE, "detections_by_hour": DETECTIONS_BY_HOUR_V1_SQLITE}}

# consensus (migration 0015): where a team judges, one settled verdict per labeling and item (a
# file, or a segment of it by its bounds). Each reviewer's vote is their latest verdict there that
# speaks (as in reviewed_labels version 4) and was not undone; the settled verdict is the latest
# adjudication (a verdict given in `--order adjudicate`), else the latest vote of the label more
# than half the voters gave (a reject's label is none), else none: a tie waits for an adjudicator.
# One voter settles alone, as before there were teams. review_id is the verdict in force, the row
# every reader of verdicts (training, relabel --head, evaluate, calibrate, export) takes.
CONSENSUS_V1 = f"""
CREATE VIEW consensus AS
WITH vote AS (
    SELECT l.id AS labeling_id, r.id AS review_id, r.start_s, r.end_s, r.adjudicated,
           CASE WHEN r.verdict = 'reject' THEN NULL ELSE r.label END AS final,
           ROW_NUMBER() OVER (PARTITION BY l.id, r.start_s, r.end_s, r.reviewer ORDER BY r.id DESC) AS nth
    FROM labeling l
    JOIN review r ON r.file_id = l.file_id
    WHERE r.undone_at IS NULL AND {_SPEAKS.format(v="r")}
),
tally AS (
    SELECT labeling_id, start_s, end_s, final, COUNT(*) AS n, MAX(review_id) AS last_id
    FROM vote WHERE nth = 1
    GROUP BY labeling_id, start_s, end_s, final
),
item AS (
    SELECT labeling_id, start_s, end_s, SUM(n) AS votes, COUNT(*) AS opinions, MAX(n) AS top
    FROM tally
    GROUP BY labeling_id, start_s, end_s
),
adjudication AS (
    SELECT labeling_id, start_s, end_s, MAX(review_id) AS review_id
    FROM vote WHERE adjudicated = TRUE
    GROUP BY labeling_id, start_s, end_s
)
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       i.start_s, i.end_s, r.verdict, CASE WHEN r.verdict = 'reject' THEN NULL ELSE r.label END AS label,
       r.reviewer, i.votes, (i.opinions = 1) AS agreed, (a.review_id IS NOT NULL) AS adjudicated,
       r.id AS review_id
FROM item i
JOIN labeling l ON l.id = i.labeling_id
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
LEFT JOIN adjudication a ON a.labeling_id = i.labeling_id
     AND COALESCE(a.start_s, -1) = COALESCE(i.start_s, -1) AND COALESCE(a.end_s, -1) = COALESCE(i.end_s, -1)
LEFT JOIN tally w ON a.review_id IS NULL AND w.labeling_id = i.labeling_id
     AND COALESCE(w.start_s, -1) = COALESCE(i.start_s, -1) AND COALESCE(w.end_s, -1) = COALESCE(i.end_s, -1)
     AND w.n = i.top AND 2 * w.n > i.votes
LEFT JOIN review r ON r.id = COALESCE(a.review_id, w.last_id)
"""

# reviewed_labels version 5 (migration 0015): version 4's rows and columns, the verdict in force
# being the consensus's settled one; an item whose voters are split shows the model's decision.
REVIEWED_LABELS_V5 = """
CREATE VIEW reviewed_labels AS
SELECT f.uri, l.job_id AS run_id, l.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash,
       CASE WHEN r.id IS NULL THEN d.label WHEN r.verdict = 'reject' THEN NULL ELSE r.label END AS label,
       CASE WHEN r.id IS NULL THEN 'model' ELSE 'human' END AS source,
       d.label AS decision, r.verdict, r.reviewer, r.reviewed_at,
       CAST(NULL AS FLOAT) AS start_s, CAST(NULL AS FLOAT) AS end_s
FROM labeling l
JOIN file f ON f.id = l.file_id
JOIN taxonomy t ON t.id = l.taxonomy_id
LEFT JOIN file_decisions d ON d.uri = f.uri AND d.model = l.model AND d.taxonomy_hash = t.content_hash
     AND d.implied_by IS NULL
LEFT JOIN consensus c ON c.uri = f.uri AND c.model = l.model AND c.taxonomy_hash = t.content_hash
     AND c.start_s IS NULL
LEFT JOIN review r ON r.id = c.review_id
UNION ALL
SELECT c.uri, c.run_id, c.model, c.taxonomy, c.taxonomy_hash,
       CASE WHEN r.verdict = 'reject' THEN NULL ELSE r.label END, 'human',
       CASE WHEN r.verdict = 'correct' THEN NULL ELSE r.label END, r.verdict, r.reviewer, r.reviewed_at,
       r.start_s, r.end_s
FROM consensus c
JOIN review r ON r.id = c.review_id
WHERE c.start_s IS NOT NULL
"""

# agreement (migration 0017): the latest batch of numbers `soundtag agreement` computed for each job.
AGREEMENT_V1 = """
CREATE VIEW agreement AS
SELECT a.job_id AS run_id, j.model, t.name AS taxonomy, t.content_hash AS taxonomy_hash, a.measure, a.label,
       a.reviewer, a.other_reviewer, a.value, a.items, a.computed_at
FROM agreement_score a
JOIN job j ON j.id = a.job_id
JOIN taxonomy t ON t.id = j.taxonomy_id
WHERE a.computed_at = (SELECT MAX(n.computed_at) FROM agreement_score n WHERE n.job_id = a.job_id)
"""
