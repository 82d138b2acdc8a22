"""CLAP's towers exported to ONNX, once per model and weights, and kept on this machine in the
folder model/onnx_layout.py describes, named for the weights' stamp (model/weights.py): other
bytes in a local folder's weight files are another export.

Building one needs torch and transformers (model/onnx_build.py); using one needs neither. A folder
whose files do not match its manifest (a truncated file, other bytes) is built again. Concurrent
processes build it once: the first holds a lock, the others wait for it.
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path

from model.onnx_layout import Export, whole
from model.weights import model_key, weights_stamp
from soundtag import hub
from soundtag.errors import ModelError

log = logging.getLogger(__name__)


def _revision_key(stamp: str) -> str:
    return stamp if re.fullmatch(r"[0-9a-f]{40}", stamp) else hashlib.sha256(stamp.encode()).hexdigest()[:16]


def folder_for(model: str, export_dir: Path, stamp: str | None = None) -> Path:
    """The export folder of ``model`` as its weights are now (or as ``stamp`` names them)."""
    stamp = weights_stamp(model, export_dir) if stamp is None else stamp
    return export_dir / model_key(model) / _revision_key(stamp)


def exported(model: str, dtype: str, export_dir: Path) -> Export:
    """The export of ``model`` holding its towers at ``dtype``: the kept one when it is whole,
    else built now (logging a one-line notice first). Raises ModelError when the model cannot be
    loaded or exported."""
    from filelock import FileLock

    if not hub.is_local(model) and not hub.in_cache(model):
        # The folder is named for the weights' revision, which the cache knows once they are in it.
        from huggingface_hub import snapshot_download

        snapshot_download(model)
    stamp = weights_stamp(model, export_dir)
    folder = folder_for(model, export_dir, stamp)
    folder.parent.mkdir(parents=True, exist_ok=True)
    found = whole(folder, dtype)
    if found is not None:
        return found
    with FileLock(str(folder) + ".lock"):
        found = whole(folder, dtype)  # another process may have built it while this one waited
        if found is not None:
            return found
        from model.onnx_build import build, quantize

        if whole(folder, "fp32") is None:
            log.warning("exporting model %s to ONNX once, into %s (later runs start without torch)", model, folder)
            build(model, folder, stamp)
        if dtype != "fp32":
            log.warning("quantizing the ONNX towers of model %s to %s once", model, dtype)
            quantize(folder, dtype)
    found = whole(folder, dtype)
    if found is None:
        raise ModelError(f"model {model}: its ONNX export in {folder} does not match its manifest right after "
                         "being built; is another process writing there?")
    return found
