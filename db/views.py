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
