"""Which weights a model name loads, as this machine knows them: the folder kept for the model
under EXPORT_DIR (``model_key``), and the stamp that names its weights (``weights_stamp``), stored
with every vector the model makes and naming its ONNX export, so that nothing made from other
weights is reused.

A hub id is stamped with the commit of its cached snapshot. A local folder is stamped with the
sha256 of its weight files' bytes: their size and mtime are no proof (a copy that keeps them, or
``touch -r``, changes the bytes alone). Hashing 600 MB at each start would cost seconds, so each
file's digest is kept in ``EXPORT_DIR/<model key>/weights.json`` with the file's size, mtime,
ctime and inode, and computed again when any of them changed (setting the mtime back changes the
ctime, which no user can set).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from soundtag import hub


def model_key(model: str) -> str:
    """A folder name for ``model``: a hub id with its slash spelled as the hub cache spells it, a
    local folder by its name and a hash of its absolute path."""
    if hub.is_local(model):
        path = str(Path(model).expanduser().resolve())
        return f"{Path(path).name}-{hashlib.sha256(path.encode()).hexdigest()[:12]}"
    return model.replace("/", "--")


def weights_stamp(model: str, export_dir: Path) -> str:
    """The commit of a hub id's cached snapshot, or ``sha256:`` and a digest of the bytes of a
    local folder's weight files (``unknown`` when there are none). Without torch: the ONNX backend
    needs it before anything loads."""
    if not hub.is_local(model):
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(model, "config.json")
        return Path(found).parent.name if isinstance(found, str) else "unknown"
    folder = Path(model).expanduser()
    files = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    if not files:
        return "unknown"
    kept_at = export_dir / model_key(model) / "weights.json"
    try:
        kept = json.loads(kept_at.read_text())
    except (OSError, ValueError):
        kept = {}
    digests, known = {}, {}
    for path in files:
        stat = path.stat()
        seen = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino]
        entry = kept.get(path.name) if isinstance(kept, dict) else None
        if not (isinstance(entry, dict) and entry.get("stat") == seen and isinstance(entry.get("sha256"), str)):
            entry = {"stat": seen, "sha256": file_sha256(path)}
        known[path.name] = entry
        digests[path.name] = entry["sha256"]
    if known != kept:
        _keep(kept_at, known)
    whole = hashlib.sha256(json.dumps(digests, sort_keys=True).encode()).hexdigest()
    return f"sha256:{whole[:32]}"


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _keep(path: Path, known: dict) -> None:
    """Write the digests so that another process reads the old file or the new one, whole. A folder
    that cannot be written costs the hashing again at the next start, nothing else."""
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(json.dumps(known, indent=1))
        partial.replace(path)
    except OSError:
        partial.unlink(missing_ok=True)
