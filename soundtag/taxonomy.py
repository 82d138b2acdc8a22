"""Label taxonomies: what the model chooses among, and the prompts it reads for each label."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

DEFAULT_TEMPLATE = "This is a sound of {}."


class TaxonomyError(ValueError):
    """A taxonomy that cannot be used; the message says what to fix."""


class Label(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    prompts: tuple[str, ...] = ()

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("a label name is empty")
        return value


class Taxonomy(BaseModel):
    """A named set of labels. A label without prompts is read as ``template.format(name)``,
    exactly as the transformers zero-shot pipeline does; several prompts are averaged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    template: str = DEFAULT_TEMPLATE
    labels: tuple[Label, ...]

    @field_validator("template")
    @classmethod
    def _template_has_slot(cls, value: str) -> str:
        if "{}" not in value:
            raise ValueError(f"template {value!r} has no '{{}}' where the label goes")
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_from_yaml(cls, value):
        # YAML users write either `- dog` or `- {name: dog, prompts: [...]}` or `dog: [prompts]`.
        if isinstance(value, dict):
            return [{"name": k, "prompts": v or ()} for k, v in value.items()]
        return [{"name": v} if isinstance(v, str) else v for v in value or ()]

    @model_validator(mode="after")
    def _labels_valid(self) -> "Taxonomy":
        if not self.labels:
            raise ValueError("it has no labels")
        seen: set[str] = set()
        for label in self.labels:
            if label.name.casefold() in seen:
                raise ValueError(f"label {label.name!r} appears twice")
            seen.add(label.name.casefold())
        return self

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    def prompts(self) -> list[list[str]]:
        """The texts to embed for each label, in label order."""
        return [list(label.prompts) or [self.template.format(label.name)] for label in self.labels]

    def canonical(self) -> dict:
        return {"name": self.name, "template": self.template,
                "labels": [{"name": lb.name, "prompts": list(lb.prompts)} for lb in self.labels]}

    @property
    def content_hash(self) -> str:
        """Identifies what the model is asked: two files with the same labels and prompts hash alike."""
        body = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()


def _parse(data: dict, where: str) -> Taxonomy:
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(err["msg"].removeprefix("Value error, ") for err in exc.errors())
        raise TaxonomyError(f"{where}: {problems}") from None


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Read a YAML taxonomy file. Raises TaxonomyError with a one-line reason."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise TaxonomyError(f"{path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise TaxonomyError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
    if isinstance(data, list):
        data = {"labels": data}
    if not isinstance(data, dict):
        raise TaxonomyError(f"{path}: expected a mapping with 'labels', or a list of labels")
    data.setdefault("name", path.stem)
    return _parse(data, str(path))


def taxonomy_from_csv(labels: str, name: str = "cli") -> Taxonomy:
    """The ``--labels "dog barking,rain"`` form."""
    return _parse({"name": name, "labels": [s for s in labels.split(",") if s.strip()]}, "--labels")


def taxonomy_from_canonical(data: dict) -> Taxonomy:
    return _parse(data, data.get("name", "taxonomy"))
