"""Where a model comes from: a local folder, or a hub id in the Hugging Face cache. Checked before
a job is recorded, without torch, so a model that cannot load fails in seconds, in one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

from soundtag.errors import ModelError, first_line

_WAYS_OUT = "run `soundtag fetch-model {model}` where there is network, or pass --model DIR (a saved CLAP)"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def is_local(model: str) -> bool:
    """A model named by a path (it exists, or it is spelled like one) rather than a hub id."""
    return model.startswith(("/", ".", "~")) or Path(model).expanduser().is_dir()


def check_folder(folder: Path) -> None:
    """Raises ModelError unless ``folder`` holds a saved CLAP (its config.json says clap)."""
    config = folder / "config.json"
    try:
        model_type = json.loads(config.read_text()).get("model_type")
    except FileNotFoundError:
        raise ModelError(f"model {folder}: no config.json there; a CLAP saved with save_pretrained is expected")
    except (OSError, ValueError) as exc:
        raise ModelError(f"model {folder}: cannot read config.json ({first_line(exc)})") from None
    if model_type != "clap":
        raise ModelError(f"model {folder}: a {model_type!r} checkpoint, not a CLAP one")


def in_cache(model: str) -> bool:
    """Whether the hub id's checkpoint config is in the Hugging Face cache (HF_HOME)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(model, "config.json"), str)


def check(model: str) -> None:
    """Raises ModelError, in one line with the ways out, unless ``model`` can be loaded: a local
    folder holding a CLAP, or a hub id that is cached or that the hub answers for at once (one
    quick attempt, no retries: an unreachable hub fails in seconds, not minutes)."""
    if is_local(model):
        folder = Path(model).expanduser()
        if not folder.is_dir():
            raise ModelError(f"model {model}: no such folder")
        check_folder(folder)
        return
    if in_cache(model):
        return
    if _offline():
        raise ModelError(f"model {model}: not in the Hugging Face cache and HF_HUB_OFFLINE is set; "
                         + _WAYS_OUT.format(model=model))
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        HfApi().model_info(model, timeout=10)
    except GatedRepoError:
        raise ModelError(f"model {model}: gated on the hub; accept its terms and set HF_TOKEN") from None
    except RepositoryNotFoundError:
        raise ModelError(f"model {model}: no such model on the Hugging Face hub (nor a local folder)") from None
    except Exception as exc:  # noqa: BLE001 - network failures come in many classes
        raise ModelError(f"model {model}: not in the Hugging Face cache and the hub is unreachable "
                         f"({first_line(exc)}); " + _WAYS_OUT.format(model=model)) from None
