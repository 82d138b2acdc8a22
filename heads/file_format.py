"""A head as a file a notebook reads without soundtag (``soundtag export-head``): safetensors or
npz, by the file's extension. Tensors ``weights`` (labels × dim, float32) and ``bias`` (labels,
float32); metadata: ``labels`` (a JSON list, the rows' order), ``base_model``, ``base_revision``,
``head`` ('head:NAME@vN'). A window's probabilities are ``1 / (1 + exp(-(v @ weights.T + bias)))``
for its base model's unit-norm embedding ``v``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from heads.head import Head
from soundtag.errors import SoundtagError


def _metadata(head: Head) -> dict[str, str]:
    return {"labels": json.dumps(list(head.labels)), "base_model": head.base_model,
            "base_revision": head.base_revision, "head": head.model}


def write(head: Head, path: Path) -> None:
    """Raises SoundtagError for an extension that is neither .safetensors nor .npz."""
    tensors = {"weights": np.ascontiguousarray(head.weights, dtype=np.float32),
               "bias": np.ascontiguousarray(head.bias, dtype=np.float32)}
    if path.suffix == ".safetensors":
        from safetensors.numpy import save_file

        save_file(tensors, str(path), metadata=_metadata(head))
    elif path.suffix == ".npz":
        # npz has no metadata: the strings go in as 0-d unicode arrays, readable without pickle.
        np.savez(path, **tensors, **{key: np.array(value) for key, value in _metadata(head).items()})
    else:
        raise SoundtagError(f"{path}: write a .safetensors or a .npz file")


def read(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata ``write`` put in ``path``."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as opened:
            return {key: opened.get_tensor(key) for key in opened.keys()}, opened.metadata()
    with np.load(path) as found:
        return ({key: found[key] for key in ("weights", "bias")},
                {key: str(found[key]) for key in found.files if key not in ("weights", "bias")})
