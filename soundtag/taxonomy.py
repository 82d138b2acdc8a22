"""Label taxonomies: what the model chooses among, and the prompts it reads for each label."""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from string import Formatter

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from soundtag.errors import TaxonomyError

DEFAULT_TEMPLATE = "This is a sound of {}."


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
        try:
            fields = [field for _, field, _, _ in Formatter().parse(value) if field is not None]
        except ValueError:
            fields = ["?"]
        if fields != [""]:
            raise ValueError(f"template {value!r} must hold exactly one '{{}}' where the label goes, and no "
                             "other braces (write {{ and }} for literal ones)")
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


def _problem(err: dict) -> str:
    """One pydantic error as a person reads it: unknown keys with the closest valid one."""
    loc = [str(part) for part in err["loc"]]
    where = ".".join(loc[:-1])
    at = f" in {where}" if where else ""
    if err["type"] == "extra_forbidden":
        model = Label if len(loc) > 1 and loc[0] == "labels" else Taxonomy
        valid = list(model.model_fields)
        close = difflib.get_close_matches(loc[-1], valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(valid)})"
        return f"unknown key {loc[-1]!r}{at}{hint}"
    if err["type"] == "missing":
        return f"missing key {loc[-1]!r}{at}"
    return err["msg"].removeprefix("Value error, ")


def _parse(data: dict, where: str) -> Taxonomy:
    try:
        return Taxonomy.model_validate(data)
    except ValidationError as exc:
        raise TaxonomyError(f"{where}: {'; '.join(_problem(err) for err in exc.errors())}") from None


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
