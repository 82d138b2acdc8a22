"""CLAP's towers exported to ONNX, once per model and weights revision, and kept on this machine.

    EXPORT_DIR/<model key>/<revision>/
        audio.onnx      log-mel features (windows, 1, frames, mels) → unit-norm audio embeddings
        text.onnx       input_ids, attention_mask → unit-norm (projected) text embeddings
        audio-int8.onnx, text-int8.onnx   the same, dynamically quantized, made when int8 is asked for
        *.onnx.data     each graph's weights, beside it: ONNX Runtime maps them instead of copying
                        them out of the graph's protobuf (the full text tower: 3.6 s and 420 MB
                        peak to open, against 10.6 s and 780 MB, on a loaded 2-core machine)
        tokenizer.json  the checkpoint's tokenizer, for the `tokenizers` library
        front_end.npz   the feature extractor's Hann window and mel filterbank (model/log_mel.py)
        manifest.json   logit scale, sample rate, window length, mel parameters, and each file's
                        size, mtime and sha256

Building one needs torch and transformers (model/onnx_build.py); using one needs neither. A folder whose files do not match its manifest (a truncated file, other bytes) is built
again. Concurrent processes build it once: the first holds a lock, the others wait for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from soundtag import hub
from soundtag.errors import ModelError

log = logging.getLogger(__name__)

# Export format: a folder written by another version of this layout is built again.
LAYOUT = 2


def model_key(model: str) -> str:
    """A folder name for ``model``: a hub id with its slash spelled as the hub cache spells it, a
    local folder by its name and a hash of its absolute path."""
    if hub.is_local(model):
        path = str(Path(model).expanduser().resolve())
        return f"{Path(path).name}-{hashlib.sha256(path.encode()).hexdigest()[:12]}"
    return model.replace("/", "--")


def _revision_key(stamp: str) -> str:
    return stamp if re.fullmatch(r"[0-9a-f]{40}", stamp) else hashlib.sha256(stamp.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Export:
    """An exported model's folder and its manifest."""

    folder: Path
    manifest: dict

    def tower(self, name: str, dtype: str) -> Path:
        """The ONNX file of tower ``name`` (audio, text) at ``dtype`` (fp32, int8)."""
        return self.folder / (f"{name}.onnx" if dtype == "fp32" else f"{name}-{dtype}.onnx")


def folder_for(model: str, export_dir: Path) -> Path:
    return export_dir / model_key(model) / _revision_key(hub.weights_stamp(model))


def exported(model: str, dtype: str, export_dir: Path) -> Export:
    """The export of ``model`` holding its towers at ``dtype``: the kept one when it is whole,
    else built now (logging a one-line notice first). Raises ModelError when the model cannot be
    loaded or exported."""
    from filelock import FileLock

    if not hub.is_local(model) and not hub.in_cache(model):
        # The folder is named for the weights' revision, which the cache knows once they are in it.
        from huggingface_hub import snapshot_download

        snapshot_download(model)
    folder = folder_for(model, export_dir)
    folder.parent.mkdir(parents=True, exist_ok=True)
    found = _whole(folder, dtype)
    if found is not None:
        return found
    with FileLock(str(folder) + ".lock"):
        found = _whole(folder, dtype)  # another process may have built it while this one waited
        if found is not None:
            return found
        from model.onnx_build import build, quantize

        if _whole(folder, "fp32") is None:
            log.warning("exporting model %s to ONNX once, into %s (later runs start without torch)", model, folder)
            build(model, folder)
        if dtype != "fp32":
            log.warning("quantizing the ONNX towers of model %s to %s once", model, dtype)
            quantize(folder, dtype)
    found = _whole(folder, dtype)
    if found is None:
        raise ModelError(f"model {model}: its ONNX export in {folder} does not match its manifest right after "
                         "being built; is another process writing there?")
    return found


def _whole(folder: Path, dtype: str) -> Export | None:
    """The export in ``folder`` if its manifest lists the towers at ``dtype`` and every listed file
    is there with its recorded bytes, else None. A file's sha256 is computed again only when its
    size or mtime changed since it was recorded (hashing 600 MB at each start would cost seconds)."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    export = Export(folder, manifest)
    files = manifest.get("files", {})
    towers = [export.tower(name, dtype).name for name in ("audio", "text")]
    needed = {*towers, *(f"{tower}.data" for tower in towers), "tokenizer.json", "front_end.npz"}
    if manifest.get("layout") != LAYOUT or not needed <= files.keys():
        return None
    for name in needed:
        recorded, path = files[name], folder / name
        try:
            stat = path.stat()
        except OSError:
            return None
        if stat.st_size != recorded["size"]:
            return None
        if stat.st_mtime_ns != recorded["mtime_ns"] and _sha256(path) != recorded["sha256"]:
            return None
    return export


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def record(folder: Path, manifest: dict, names: list[str]) -> None:
    """Write ``manifest`` into ``folder`` with the size, mtime and sha256 of its files ``names``."""
    for name in names:
        stat = (folder / name).stat()
        manifest["files"][name] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _sha256(folder / name)}
    partial = folder / "manifest.json.partial"
    partial.write_text(json.dumps(manifest, indent=1))
    partial.replace(folder / "manifest.json")
