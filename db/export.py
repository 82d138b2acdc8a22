"""Stored audio embeddings written out for notebooks: a Parquet file of one row per window with
``uri, start_s, end_s, model, vector`` (float32 list), written chunk by chunk."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from db.embeddings import StoredEmbeddings, Unreadable, embedding_chunks


def export_embeddings(engine: Engine, out: Path, model: str, job_id: str | None = None) -> tuple[int, list[str]]:
    """Write the usable stored embeddings of ``model`` (of one job's files, or all) to ``out``;
    returns how many windows were written, and why each file whose row is damaged was left out."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    written, writer, damaged = 0, None, []
    try:
        for stored in embedding_chunks(engine, model, job_id=job_id):
            damaged += [found.reason for found in stored if isinstance(found, Unreadable)]
            files = [found for found in stored if isinstance(found, StoredEmbeddings)]
            if not files:
                continue
            vectors = np.concatenate([found.vectors for found in files])
            flat = pa.array(vectors.ravel(), type=pa.float32())
            batch = pa.table({
                "uri": [found.uri for found in files for _ in found.starts],
                "start_s": np.concatenate([found.starts for found in files]),
                "end_s": np.concatenate([found.ends for found in files]),
                "model": [model] * len(vectors),
                "vector": pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1]),
            })
            if writer is None:
                writer = pq.ParquetWriter(out, batch.schema)
            writer.write_table(batch)
            written += len(vectors)
    finally:
        if writer is not None:
            writer.close()
    return written, damaged
