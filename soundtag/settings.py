"""Every setting soundtag reads, in one typed object (environment prefix ``SOUNDTAG_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

AUDIO_EXTENSIONS = (
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".m4a", ".aac", ".aif", ".aiff",
    ".aifc", ".au", ".caf", ".w64", ".wma", ".mp4", ".webm", ".mka",
)


class Settings(BaseSettings):
    """Defaults work on a laptop: embedded SQLite, local Redis, the public CLAP checkpoint."""

    model_config = SettingsConfigDict(env_prefix="SOUNDTAG_", env_file=".env", extra="ignore")

    model: str = "laion/clap-htsat-unfused"
    database_url: str = "sqlite:///soundtag.db"
    broker_url: str = "redis://localhost:6379/0"

    device: str = "auto"
    dtype: Literal["fp32", "fp16", "bf16", "int8"] = "fp32"
    batch_size: int = Field(16, ge=1, description="windows per forward pass of the audio tower")
    window_s: float | None = Field(None, gt=0, description="window length; default: the model's max")
    hop_s: float | None = Field(None, gt=0, description="hop between windows; default: the window")
    decode_threads: int = Field(2, ge=1)
    # Files are decoded in blocks, so memory does not grow with them; these bound the time one
    # file can take, checked on what a file declares and again on what it decodes to.
    max_duration_s: float = Field(24 * 3600, gt=0, description="longer files fail")
    max_channels: int = Field(64, ge=1, description="files declaring more channels fail")
    max_rate: int = Field(768_000, ge=1, description="files declaring a higher sample rate fail")

    queue: str = "soundtag"
    files_per_task: int = Field(64, ge=1)
    task_max_attempts: int = Field(3, ge=1, description="deliveries of a file that kill its worker")
    transient_retries: int = Field(50, ge=0, description="retries (backoff up to 5 min) while a service is down")
    visibility_timeout_s: int = Field(6 * 3600, ge=5)
    schedule_file: str | None = None
    scan_queue: str = "soundtag.scan"
    scan_lock_s: int = Field(3600, ge=10, description="a scan's lock expires after this if its process dies")

    @property
    def model_ref(self) -> str:
        """The model's identity stored with every result: a local folder by absolute path, a hub
        id as given."""
        path = Path(self.model).expanduser()
        return str(path.resolve()) if path.is_dir() else self.model
