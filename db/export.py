"""Stored audio embeddings written out for notebooks: a Parquet file of one row per window with
``uri, start_s, end_s, model, vector`` (float32 list), written chunk by chunk."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from db.embeddings import embedding_chunks


def export_embeddings(engine: Engine, out: Path, model: str, job_id: str | None = None) -> int:
    """Write the usable stored embeddings of ``model`` (of one job's files, or all) to ``out``;
    returns how many windows were written."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    written, writer = 0, None
    try:
        for files in embedding_chunks(engine, model, job_id=job_id):
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
    return written
