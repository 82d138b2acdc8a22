"""A stored head found by the reference people and jobs give it: ``NAME`` (the newest version),
``NAME@vN``, or a labeling's model ``head:NAME@vN``. Every caller resolves a head here."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from sqlalchemy import Engine

from db import packing
from db.heads import head_row, save_head
from heads.head import PREFIX, Head, parse_ref

_lock = threading.Lock()
_versions: dict[tuple[str, str, int], Head] = {}


def resolve(engine: Engine, ref: str) -> Head:
    """The head ``ref`` names. A version, once stored, never changes, so each is read from SQL
    once per process; a bare NAME is looked up each time (a newer version may have come).
    Raises SoundtagError for a malformed reference, HeadNotFound for a missing head."""
    name, version = parse_ref(ref)
    if version is None:
        return _head(head_row(engine, name))
    key = (str(engine.url), name, version)
    with _lock:
        if key not in _versions:
            _versions[key] = _head(head_row(engine, name, version))
        return _versions[key]


def base_model(engine: Engine, model: str) -> str:
    """The model whose embeddings a labeling's files have: a head's base model for a head's."""
    return resolve(engine, model).base_model if model.startswith(PREFIX) else model


def store(engine: Engine, head: Head, *, verdicts: Sequence[int], truth_files: Sequence[int], options: dict) -> Head:
    """Store ``head`` as the next version of its name; returns it with that version and its id."""
    version, row_id = save_head(engine, head, verdicts=verdicts, truth_files=truth_files, options=options)
    return replace(head, version=version, id=row_id)


def _head(row) -> Head:
    labels = tuple(row.labels)
    return Head(row.name, row.version, row.base_model, row.base_revision, labels,
                packing.unpack(row.weights, np.float32, True).reshape(len(labels), row.dim),
                packing.unpack(row.bias, np.float32, True), row.metrics.get("labels", {}),
                row.metrics.get("left_out", {}), row.id)
