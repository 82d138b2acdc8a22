"""Tables. Private to soundtag: people query the views in db/views.py, which stay stable."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text,
    UniqueConstraint, false, text,
)
from sqlalchemy.dialects.postgresql import ARRAY, DOUBLE_PRECISION, REAL
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from soundtag.states import FileState, JobState

# Named constraints so Alembic migrations can refer to them on every backend.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER PRIMARY KEY only
# Scores in label order, one value per label of the taxonomy: PostgreSQL arrays (float4 for the
# windows, which are most of the rows; float8 for the files), a JSON array on SQLite (json_each
# unnests it in the views).
Reals = JSON().with_variant(ARRAY(REAL), "postgresql")
Doubles = JSON().with_variant(ARRAY(DOUBLE_PRECISION), "postgresql")
Names = JSON().with_variant(ARRAY(Text), "postgresql")


def now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class TaxonomyRow(Base):
    __tablename__ = "taxonomy"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[dict] = mapped_column(JSON)
    labels: Mapped[list] = mapped_column(Names)  # the label names, in order: what the score arrays index
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class TaxonomyLabel(Base):
    """The decision policy of a taxonomy: one row per label, and per group (a parent that is no
    label). Scores never depend on it, so it is not part of the taxonomy's hash: saving the
    taxonomy again with other thresholds rewrites these rows, and the latest policy wins."""

    __tablename__ = "taxonomy_label"

    taxonomy_id: Mapped[int] = mapped_column(ForeignKey("taxonomy.id", ondelete="CASCADE"), primary_key=True)
    label: Mapped[str] = mapped_column(Text, primary_key=True)
    threshold: Mapped[float | None] = mapped_column(Float)  # the label's, else the taxonomy's; None: rank 1 passes
    background: Mapped[bool] = mapped_column(Boolean, default=False)
    parent: Mapped[str | None] = mapped_column(Text)
    is_group: Mapped[bool] = mapped_column(Boolean, default=False)


class TaxonomyMember(Base):
    """Which labels' scores roll up into which node: every label into itself and each ancestor."""

    __tablename__ = "taxonomy_member"

    taxonomy_id: Mapped[int] = mapped_column(ForeignKey("taxonomy.id", ondelete="CASCADE"), primary_key=True)
    node: Mapped[str] = mapped_column(Text, primary_key=True)
    label: Mapped[str] = mapped_column(Text, primary_key=True)


class Job(Base):
    """One `soundtag run`, `enqueue` or scheduled scan: what was asked and when."""

    __tablename__ = "job"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(Text)
    taxonomy_id: Mapped[int] = mapped_column(ForeignKey("taxonomy.id"))
    sources: Mapped[list] = mapped_column(JSON)
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=JobState.ACTIVE)  # a JobState
    error: Mapped[str | None] = mapped_column(Text)  # why the job failed as a whole
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class File(Base):
    __tablename__ = "file"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    uri: Mapped[str] = mapped_column(Text, unique=True)
    # The outcome of the latest attempt at the file as it is now (FileState queued, done or failed).
    status: Mapped[str] = mapped_column(String(16), default=FileState.QUEUED)
    error: Mapped[str | None] = mapped_column(Text)
    # What the source says about the object (size + mtime, ETag, dataset revision): the cheap
    # change detector used to skip work. content_hash is the sha256 the worker computed.
    fingerprint: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    duration_s: Mapped[float | None] = mapped_column(Float)
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    channels: Mapped[int | None] = mapped_column(Integer)
    truth: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    # When (UTC) and where the recording was made, as its metadata or name says (soundtag/recording.py);
    # None when nothing says.
    recorded_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    site: Mapped[str | None] = mapped_column(Text)


class JobFile(Base):
    """A file's state within one job; job counts are counted from here, so a redelivered batch
    can never count twice."""

    __tablename__ = "job_file"

    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("file.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # a FileState
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    # The lease (db/leases.py): the worker process labeling the file, since when, and until when
    # it must renew; on a finished file, who labeled it. ``lost`` counts the holders that died.
    worker: Mapped[str | None] = mapped_column(Text)
    leased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    lost: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    # The lease indexes hold only queued files: finished ones drop out, so reclaiming stays cheap.
    __table_args__ = (Index("ix_job_file_job_status", "job_id", "status"),
                      Index("ix_job_file_lease_until", "lease_until", postgresql_where=text("status = 'queued'"),
                            sqlite_where=text("status = 'queued'")),
                      Index("ix_job_file_worker", "worker", postgresql_where=text("status = 'queued'"),
                            sqlite_where=text("status = 'queued'")))


class Labeling(Base):
    """The current result of one model + taxonomy on one file; relabeling replaces it. The file's
    scores and cosines are arrays in the taxonomy's label order; its best label (rank 1, first in
    label order among equal scores) is kept beside them for the queries that only want that."""

    __tablename__ = "labeling"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("file.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(Text)
    taxonomy_id: Mapped[int] = mapped_column(ForeignKey("taxonomy.id"))
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id"))
    fingerprint: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    top_label: Mapped[str] = mapped_column(Text)
    top_score: Mapped[float] = mapped_column(Float)
    top_similarity: Mapped[float] = mapped_column(Float)
    scores: Mapped[list] = mapped_column(Doubles)
    similarities: Mapped[list] = mapped_column(Doubles)
    # exp(logit_scale_a) of the model that scored: a window's scores are the softmax of its cosines
    # times this, so the views compute them instead of storing them (None: no windows to score).
    logit_scale: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)

    __table_args__ = (UniqueConstraint("file_id", "model", "taxonomy_id", name="uq_labeling_key"),
                      Index("ix_labeling_top_label", "top_label"))


class LabelingWindow(Base):
    """One window of a labeling: one row whatever the number of labels (issue 9: a row per label
    and window made terabytes of a large archive). Only the cosines are stored, as float4: the
    scores are their softmax at the labeling's logit scale, which the views compute (issue 9: the
    scores were a third of the bytes per hour). The rank-1 label is the best cosine (the first
    in label order among equal ones), kept with its score for the indexed queries."""

    __tablename__ = "segment"

    labeling_id: Mapped[int] = mapped_column(ForeignKey("labeling.id", ondelete="CASCADE"), primary_key=True)
    window: Mapped[int] = mapped_column(Integer, primary_key=True)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    top_label: Mapped[str] = mapped_column(Text)
    top_score: Mapped[float] = mapped_column(Float().with_variant(REAL, "postgresql"))
    top_similarity: Mapped[float] = mapped_column(Float().with_variant(REAL, "postgresql"))
    similarities: Mapped[list] = mapped_column(Reals)

    __table_args__ = (Index("ix_segment_top_label", "top_label"),)


class LabelEmbedding(Base):
    """The text embeddings of a taxonomy's labels by one model (one row per label, prompts
    averaged), so a repeated run skips the text tower. ``model_revision`` names the weights and
    dtype that computed them."""

    __tablename__ = "label_embedding"

    model: Mapped[str] = mapped_column(Text, primary_key=True)
    model_revision: Mapped[str] = mapped_column(Text, primary_key=True)
    taxonomy_id: Mapped[int] = mapped_column(ForeignKey("taxonomy.id", ondelete="CASCADE"), primary_key=True)
    dim: Mapped[int] = mapped_column(Integer)
    vectors: Mapped[bytes] = mapped_column(LargeBinary)  # float32, labels × dim, in label order
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Review(Base):
    """A person's verdict on the model's decision for one file, or one segment of it, by one model
    and taxonomy. Rows are never deleted: a later verdict on the same file and bounds supersedes
    an earlier one, and an undo stamps ``undone_at``, so the history of who said what stays."""

    __tablename__ = "review"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("file.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(Text)
    taxonomy_id: Mapped[int] = mapped_column(ForeignKey("taxonomy.id"))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("job.id", ondelete="SET NULL"))  # the run reviewed
    # accept and reject: the model's decision judged (as it was then); correct: the reviewer's label.
    label: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str] = mapped_column(String(16))  # a Verdict
    reviewer: Mapped[str] = mapped_column(Text)
    reviewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    undone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # A segment's verdict (a window or an event of the file): its bounds; a file's verdict has none.
    start_s: Mapped[float | None] = mapped_column(Float)
    end_s: Mapped[float | None] = mapped_column(Float)
    # The decision the page showed (a segment's own for a segment's verdict): what a correct replaced.
    shown: Mapped[str | None] = mapped_column(Text)
    # Given in `--order adjudicate`: it settles the item whatever the votes (the consensus view).
    adjudicated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (Index("ix_review_key", "file_id", "model", "taxonomy_id"),)


class AudioEmbedding(Base):
    """The audio embeddings of one file's windows by one model: what a new taxonomy, a search or
    an export needs without the recording. Independent of any taxonomy, so one row per file
    serves them all. Usable while the file's fingerprint is the one stored here; the model
    revision (weights and dtype) and the window settings are part of the key."""

    __tablename__ = "audio_embedding"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("file.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(Text)
    model_revision: Mapped[str] = mapped_column(Text)
    window_s: Mapped[float] = mapped_column(Float)
    hop_s: Mapped[float] = mapped_column(Float)
    fingerprint: Mapped[str | None] = mapped_column(Text)
    dtype: Mapped[str] = mapped_column(String(8))  # fp16 or fp32, + z when packed (db/packing.py)
    dim: Mapped[int] = mapped_column(Integer)
    # float64 starts and ends of the windows, and their unit-norm vectors, windows × dim, in order.
    starts: Mapped[bytes] = mapped_column(LargeBinary)
    ends: Mapped[bytes] = mapped_column(LargeBinary)
    vectors: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)

    __table_args__ = (UniqueConstraint("file_id", "model", "model_revision", "window_s", "hop_s",
                                       name="uq_audio_embedding_key"),
                      Index("ix_audio_embedding_model", "model", "model_revision"))


class HeadRow(Base):
    """A head trained on stored embeddings and verdicts (``soundtag train``), one row per version
    of a name. Its labelings are those of model 'head:NAME@vN'. ``verdicts`` lists the review
    ids it learned from and ``truth_files`` the files whose truth it read, so the same fit can be
    made again; ``metrics`` holds each label's counts and cross-validated numbers, and the
    reasons of the labels left out."""

    __tablename__ = "head"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    base_model: Mapped[str] = mapped_column(Text)
    base_revision: Mapped[str] = mapped_column(Text)
    labels: Mapped[list] = mapped_column(Names)  # the rows of weights, in order
    dim: Mapped[int] = mapped_column(Integer)
    weights: Mapped[bytes] = mapped_column(LargeBinary)  # float32 labels × dim, packed (db/packing.py)
    bias: Mapped[bytes] = mapped_column(LargeBinary)  # float32 labels, packed
    verdicts: Mapped[list] = mapped_column(JSON)
    truth_files: Mapped[list] = mapped_column(JSON)
    options: Mapped[dict] = mapped_column(JSON)  # scope, --from, weak weight, folds, seed
    metrics: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)

    __table_args__ = (UniqueConstraint("name", "version", name="uq_head_name_version"),)


class EstimateRow(Base):
    """What ``soundtag estimate`` computed from a job's validation verdicts on one label (and
    site; None: all of them), each value with its 95% interval (soundtag/estimate.py). Appended:
    the ``estimates`` view shows the latest of each."""

    __tablename__ = "estimate"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(Text)
    site: Mapped[str | None] = mapped_column(Text)
    windows: Mapped[int] = mapped_column(BigInteger)
    verdicts: Mapped[int] = mapped_column(Integer)
    prevalence: Mapped[float] = mapped_column(Float)
    prevalence_low: Mapped[float] = mapped_column(Float)
    prevalence_high: Mapped[float] = mapped_column(Float)
    precision: Mapped[float | None] = mapped_column(Float)
    precision_low: Mapped[float | None] = mapped_column(Float)
    precision_high: Mapped[float | None] = mapped_column(Float)
    recall: Mapped[float | None] = mapped_column(Float)
    recall_low: Mapped[float | None] = mapped_column(Float)
    recall_high: Mapped[float | None] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class AgreementRow(Base):
    """One number ``soundtag agreement`` computed over a job's votes (soundtag/agreement.py):
    Krippendorff's α over everyone (``label`` None) or of one label against the rest, Cohen's κ of
    a pair of reviewers, or a reviewer's share of votes equal to the settled label. Appended, one
    batch per run with one stamp: the ``agreement`` view shows the latest batch of each job."""

    __tablename__ = "agreement_score"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"))
    measure: Mapped[str] = mapped_column(String(16))  # alpha, kappa or settled
    label: Mapped[str | None] = mapped_column(Text)
    reviewer: Mapped[str | None] = mapped_column(Text)
    other_reviewer: Mapped[str | None] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Float)  # None: undefined (too few items, no variation)
    items: Mapped[int] = mapped_column(Integer)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class JobSummary(Base):
    """What a scan of a job's every window computed (db/summaries.py: the overview's counts, a
    label's score grid), with the stamp of the rows it was computed from: read again while the
    stamp holds, computed again when it changed."""

    __tablename__ = "job_summary"

    job_id: Mapped[str] = mapped_column(ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(Text, primary_key=True)
    stamp: Mapped[str] = mapped_column(Text)
    body: Mapped[list] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class ReviewerRow(Base):
    """A named person of a reviewing team (``soundtag reviewers``): a ``reviewer`` records
    verdicts, a ``viewer`` only listens, an ``admin`` also adjudicates and sees the team's
    progress. Only a slow salted hash of the person's token is kept; removing a person stamps
    ``removed_at`` (their verdicts stay theirs) and ends their sessions at their next request."""

    __tablename__ = "reviewer"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(String(16))  # a Role
    token_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_reviewer_name", "name", unique=True, postgresql_where=text("removed_at IS NULL"),
                            sqlite_where=text("removed_at IS NULL")),)
