"""Every setting soundtag reads, in one typed object (environment prefix ``SOUNDTAG_``)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from soundtag.errors import ConfigError

AUDIO_EXTENSIONS = (
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff",
    ".aifc", ".au", ".caf", ".w64", ".wma", ".mp4", ".webm", ".mka",
)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, as taskset and container limits set it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _exports_cache() -> Path:
    """Beside the Hugging Face cache (HF_HOME, as huggingface_hub places it)."""
    hf_home = os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface"
    return Path(hf_home) / "soundtag-onnx"


def _user_cache() -> Path:
    """The user's cache folder, as XDG (and Hugging Face's cache) place it."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "soundtag"


class Settings(BaseSettings):
    """Defaults work on a laptop: embedded SQLite, local Redis, the public CLAP checkpoint."""

    model_config = SettingsConfigDict(env_prefix="SOUNDTAG_", env_file=".env", extra="ignore")

    model: str = "laion/clap-htsat-unfused"
    database_url: str = "sqlite:///soundtag.db"
    broker_url: str = "redis://localhost:6379/0"

    device: str = "auto"
    # Which runtime runs the towers: auto is the fastest installed CPU runtime on the CPU (OpenVINO
    # on x86, else ONNX Runtime) and torch on a GPU (and for what only torch does: fp16, fused
    # checkpoints); see model/classifier.py.
    backend: Literal["auto", "torch", "onnx", "openvino"] = "auto"
    # The towers exported to ONNX and the prompts' text embeddings, per model and weights revision.
    export_dir: Path = Field(default_factory=_exports_cache)
    dtype: Literal["fp32", "fp16", "bf16", "int8"] = "fp32"
    batch_size: int = Field(16, ge=1, description="windows per forward pass of the audio tower")
    window_s: float | None = Field(None, gt=0, description="window length; default: the model's max")
    hop_s: float | None = Field(None, gt=0, description="hop between windows; default: the window")
    decode_threads: int = Field(default_factory=usable_cpus, ge=1,
                                description="threads reading and decoding ahead of the model; default: the usable CPUs")
    # Files are decoded in blocks, so memory does not grow with them; these bound the time one
    # file can take, checked on what a file declares and again on what it decodes to.
    max_duration_s: float = Field(24 * 3600, gt=0, description="longer files fail")
    max_channels: int = Field(64, ge=1, description="files declaring more channels fail")
    max_rate: int = Field(768_000, ge=1, description="files declaring a higher sample rate fail")
    # How each window's audio embedding is kept (for relabel, search, export): fp16 halves the
    # bytes and moves scores by well under 2e-3; off keeps none.
    embeddings: Literal["fp16", "fp32", "off"] = "fp16"
    # `soundtag search` keeps the stored vectors here as a float32 matrix per database, model and
    # revision: a cache of the database, updated by each search, safe to delete between searches.
    index_dir: Path = Field(default_factory=lambda: _user_cache() / "index")
    # Past this many windows a search scans an approximate index (vectors/approximate_index.py,
    # recall@10 ≥ 0.95) instead of every vector; `search --exact/--approximate` chooses per query.
    search_approximate_above: int = Field(10_000_000, ge=0)

    # How labeling reads when and where each recording was made beyond its metadata
    # (soundtag/recording.py): a strptime pattern found in file names, the IANA time zone of
    # times written without one (default UTC), a regular expression whose first group in a
    # file's path is its site.
    time_pattern: str | None = None
    timezone: str | None = None
    site_pattern: str | None = None

    queue: str = "soundtag"
    files_per_task: int = Field(64, ge=1)
    task_max_attempts: int = Field(3, ge=1, description="workers that may die holding a file before it fails")
    transient_retries: int = Field(50, ge=0, description="retries (backoff up to 5 min) while a service is down")
    visibility_timeout_s: int = Field(6 * 3600, ge=5)
    # A worker process leases the files it labels and renews the leases every heartbeat_s; live
    # workers take back the files of one that missed its renewals for lease_s (db/leases.py), so
    # a dead worker's files are labeled again within lease_s + heartbeat_s.
    lease_s: float = Field(60, ge=1, description="a worker that stopped renewing loses its files after this")
    heartbeat_s: float = Field(15, gt=0, description="how often a worker renews its leases and takes back "
                               "expired ones; at most a third of lease_s")
    schedule_file: str | None = None
    scan_queue: str = "soundtag.scan"
    scan_lock_s: int = Field(3600, ge=10, description="a scan's lock expires after this if its process dies")

    # A worker reads only files under these folders and objects in these buckets, whatever a
    # message names (see soundtag.sources.access); empty: no restriction.
    allowed_roots: Annotated[list[str], NoDecode] = []
    allowed_buckets: Annotated[list[str], NoDecode] = []

    # `soundtag worker` serves Prometheus metrics on this port (worker/metrics.py); unset: none.
    metrics_port: int | None = Field(None, ge=1, le=65535)

    # `soundtag review` requires it on any address but loopback (see review.guard).
    review_token: str | None = None

    @field_validator("allowed_roots", "allowed_buckets", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        """The environment gives a JSON list or a comma-separated one."""
        if isinstance(value, str):
            value = json.loads(value) if value.lstrip().startswith("[") else value.split(",")
        return [item.strip() for item in value if item.strip()]

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        scheme = value.partition(":")[0].partition("+")[0]
        if scheme not in {"sqlite", "postgresql", "postgres"} or "://" not in value:
            # The URL itself is not repeated: it may hold a password.
            raise ValueError(f"scheme {scheme!r} is not supported; use sqlite:///PATH or "
                             "postgresql://USER:PASSWORD@HOST:PORT/DB")
        return value

    @property
    def model_ref(self) -> str:
        """The model's identity stored with every result: a local folder by absolute path, a hub
        id as given."""
        path = Path(self.model).expanduser()
        return str(path.resolve()) if path.is_dir() else self.model


# Options whose name on the command line is not the field's.
_OPTIONS = {"database_url": "--database", "window_s": "--window", "hop_s": "--hop", "review_token": "--token"}
_SECRET = {"database_url", "broker_url", "review_token"}


def load_settings(**overrides) -> Settings:
    """Settings from the environment, with the given non-None values on top. Raises ConfigError
    naming the option, its environment variable and the allowed values."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "setting"
        option = _OPTIONS.get(field, "--" + field.replace("_", "-"))
        shown = "" if field in _SECRET else f" {err.get('input')!r}"
        reason = err["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{option} (SOUNDTAG_{field.upper()}){shown}: {reason}") from None
