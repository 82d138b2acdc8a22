"""Prompts' text embeddings kept on this machine across databases and runs, per model, revision
and exact prompt: a fresh database labeled with a taxonomy seen before pays no text tower.

One SQLite file per model beside its exports, rows keyed by the revision and the prompt's
sha256; several processes (a fleet's workers) share it. A cache: safe to delete.
"""

from __future__ import annotations

import hashlib
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np

from model.weights import model_key


class PromptCache:
    def __init__(self, path: Path, revision: str):
        self.path = path
        self.revision = revision

    @classmethod
    def beside(cls, export_dir: Path, model: str, revision: str) -> PromptCache:
        return cls(export_dir / model_key(model) / "prompts.sqlite", revision)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("create table if not exists prompts (revision text, sha256 text, vector blob, "
                     "primary key (revision, sha256))")
        return conn

    def get(self, texts: list[str]) -> dict[str, np.ndarray]:
        """The kept embeddings of those of ``texts`` seen before."""
        by_hash = {_sha256(text): text for text in texts}
        try:
            with closing(self._connect()) as conn:
                rows = conn.execute(
                    f"select sha256, vector from prompts where revision = ? and sha256 in "
                    f"({','.join('?' * len(by_hash))})", [self.revision, *by_hash]).fetchall()
        except sqlite3.Error:
            return {}  # an unreadable cache costs the text tower, nothing else
        return {by_hash[digest]: np.frombuffer(vector, dtype=np.float32) for digest, vector in rows}

    def put(self, embeddings: dict[str, np.ndarray]) -> None:
        rows = [(self.revision, _sha256(text), np.asarray(vector, np.float32).tobytes())
                for text, vector in embeddings.items()]
        try:
            with closing(self._connect()) as conn, conn:
                conn.executemany("insert or replace into prompts values (?, ?, ?)", rows)
        except sqlite3.Error:
            pass  # a read-only or full disk: the next run computes them again


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
