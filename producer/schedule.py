"""Schedule files: which sources to scan, against which taxonomy and model, how often.

    scans:
      - name: field-recordings
        sources: ["s3://archive/field/", "/mnt/archive/interviews"]
        taxonomy: taxonomy.yaml          # relative to this file; or labels: [rain, wind]
        model: laion/clap-htsat-unfused  # optional, default SOUNDTAG_MODEL
        every: 6h                        # 90s, 30m, 6h, 1d ... or cron: "0 3 * * *"
        pattern: "*.wav"                 # optional
        truth_column: category           # optional, as `soundtag run --truth-column`
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from soundtag.errors import ScheduleError, TaxonomyError
from soundtag.taxonomy import Taxonomy, load_taxonomy, taxonomy_from_csv

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str | int | float) -> timedelta:
    """``90``, ``"90s"``, ``"30m"``, ``"6h"``, ``"1d"`` → timedelta."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", str(text))
        if not match:
            raise ValueError(f"interval {text!r} is not like 90s, 30m, 6h or 1d")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise ValueError(f"interval {text!r} must be positive")
    return timedelta(seconds=seconds)


class Scan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    sources: list[str]
    taxonomy: str | None = None
    labels: list[str] | None = None
    model: str | None = None
    pattern: str | None = None
    audio_column: str | None = None
    truth_column: str | None = None
    every: str | int | None = None
    cron: str | None = None

    @field_validator("sources")
    @classmethod
    def _has_sources(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("needs at least one source")
        return value

    @field_validator("every")
    @classmethod
    def _interval(cls, value):
        if value is not None:
            parse_interval(value)
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value):
        if value is not None:
            from croniter import croniter

            if not croniter.is_valid(value):
                raise ValueError(f"cron {value!r} is not a valid 5-field cron expression")
        return value

    @model_validator(mode="after")
    def _one_of_each(self) -> "Scan":
        if (self.every is None) == (self.cron is None):
            raise ValueError("give exactly one of every or cron")
        if (self.taxonomy is None) == (self.labels is None):
            raise ValueError("give exactly one of taxonomy or labels")
        return self


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scans: list[Scan]
    base: Path = Path(".")

    @model_validator(mode="after")
    def _unique_names(self) -> "Schedule":
        names = [scan.name for scan in self.scans]
        if len(names) != len(set(names)):
            raise ValueError("scan names must be unique")
        return self

    def get(self, name: str) -> Scan:
        for scan in self.scans:
            if scan.name == name:
                return scan
        raise ScheduleError(f"no scan named {name!r} in the schedule")

    def taxonomy(self, scan: Scan) -> Taxonomy:
        if scan.labels is not None:
            return taxonomy_from_csv(",".join(scan.labels), name=scan.name)
        return load_taxonomy(self.base / scan.taxonomy)


def load_schedule(path: str | Path) -> Schedule:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
        schedule = Schedule.model_validate({**data, "base": path.parent})
        for scan in schedule.scans:
            schedule.taxonomy(scan)
        return schedule
    except OSError as exc:
        raise ScheduleError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ScheduleError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ScheduleError(f"{path}: {where}: {err['msg'].removeprefix('Value error, ')}") from None
    except TaxonomyError as exc:
        raise ScheduleError(f"{path}: {exc}") from None


def beat_schedule(schedule: Schedule, task: str, queue: str) -> dict:
    """Celery beat entries: one per scan, sending ``task`` with the scan's name."""
    from celery.schedules import crontab

    entries = {}
    for scan in schedule.scans:
        if scan.cron:
            minute, hour, day_of_month, month_of_year, day_of_week = scan.cron.split()
            when = crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                           day_of_week=day_of_week)
        else:
            when = parse_interval(scan.every)
        entries[f"scan:{scan.name}"] = {"task": task, "schedule": when, "args": [scan.name],
                                        "options": {"queue": queue}}
    return entries
