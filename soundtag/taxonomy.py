"""Label taxonomies: what the model chooses among, and the prompts it reads for each label."""

from __future__ import annotations

import difflib
import hashlib
import json
import unicodedata
from pathlib import Path
from string import Formatter
from typing import Annotated

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator, model_validator

from soundtag.errors import TaxonomyError

DEFAULT_TEMPLATE = "This is a sound of {}."


def key(name: str) -> str:
    """What two names are compared by: Unicode NFC, case-folded (``Café`` composed or decomposed,
    ``café``, ``CAFÉ`` are one name)."""
    return unicodedata.normalize("NFC", name).casefold()


def _number(value):
    # YAML's `true` is no threshold, nor is "0.3": pydantic would read them as 1.0 and 0.3.
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ValueError(f"threshold {value!r} is not a number: give a cosine similarity between -1 and 1")
    return value


Threshold = Annotated[float | None, BeforeValidator(_number)]


def _name(value: str, what: str) -> str:
    """``value`` stripped, refused when empty or when it holds a character that prints as nothing
    or moves the terminal (control, zero-width, direction marks): two names that print alike would
    be two labels, and an escape sequence in one would reach every terminal that lists it."""
    value = value.strip()
    if not value:
        raise ValueError(f"a {what} name is empty")
    hidden = next((ch for ch in value if not ch.isprintable() and ch != " "), None)
    if hidden is not None:
        raise ValueError(f"{what} {value!r} holds the invisible or control character U+{ord(hidden):04X}; "
                         "remove it")
    return value


class Label(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    prompts: tuple[str, ...] = ()
    # The decision policy, which never changes scores (see Taxonomy.canonical).
    threshold: Threshold = None
    background: bool = False
    parent: str | None = None

    @field_validator("name")
    @classmethod
    def _name_shown_as_it_is(cls, value: str) -> str:
        return _name(value, "label")

    @field_validator("threshold")
    @classmethod
    def _threshold_is_a_cosine(cls, value: float | None) -> float | None:
        return _cosine(value)

    @field_validator("parent")
    @classmethod
    def _parent_shown_as_it_is(cls, value: str | None) -> str | None:
        return None if value is None else _name(value, "parent")

    @model_validator(mode="after")
    def _background_decides_alone(self) -> "Label":
        if self.background and (self.threshold is not None or self.parent is not None):
            raise ValueError(f"background label {self.name!r} cannot have a threshold or a parent: "
                             "when it wins, the file abstains")
        return self


class Group(BaseModel):
    """The decision policy of a group: a parent that is no label, named by its members' ``parent``.
    It has no prompts and no scores of its own, only its threshold."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    threshold: Threshold = None

    @field_validator("name")
    @classmethod
    def _name_shown_as_it_is(cls, value: str) -> str:
        return _name(value, "group")

    @field_validator("threshold")
    @classmethod
    def _threshold_is_a_cosine(cls, value: float | None) -> float | None:
        return _cosine(value)


# calibrate gives a label that cannot reach its target precision a threshold just above every
# cosine, so above 1 where a cosine was 1 (or a float's hair above it): it tags nothing.
_ABOVE_EVERY_COSINE = 1.0 + 1e-5


def _cosine(value: float | None) -> float | None:
    if value is not None and not -1.0 <= value <= _ABOVE_EVERY_COSINE:
        raise ValueError(f"threshold {value} is not a cosine similarity: give one between -1 and 1")
    return value


class LabelPolicy(BaseModel):
    """How one node of the taxonomy decides: a label, or a group named only as a parent.
    ``threshold`` is the effective one: the label's own, else the taxonomy's, else None (then
    only the rank-1 label passes)."""

    model_config = ConfigDict(frozen=True)

    label: str
    threshold: float | None
    background: bool
    parent: str | None
    group: bool
    members: tuple[str, ...]  # the labels whose scores count towards it: itself and its descendants


class Taxonomy(BaseModel):
    """A named set of labels. A label without prompts is read as ``template.format(name)``,
    exactly as the transformers zero-shot pipeline does; several prompts are averaged."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    template: str = DEFAULT_TEMPLATE
    threshold: Threshold = None
    labels: tuple[Label, ...]
    groups: tuple[Group, ...] = ()

    @field_validator("name")
    @classmethod
    def _name_shown_as_it_is(cls, value: str) -> str:
        return _name(value, "taxonomy")

    @field_validator("threshold")
    @classmethod
    def _threshold_is_a_cosine(cls, value: float | None) -> float | None:
        return _cosine(value)

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

    @model_validator(mode="before")
    @classmethod
    def _names_normalised(cls, data):
        """Labels in each YAML form as mappings, and every name (label, parent, group) once in NFC,
        with one spelling per name: a parent (or group) written ``Animal`` beside the label
        ``animal`` is that label; ``Animal`` and ``animal`` as parents are one group."""
        if not isinstance(data, dict):
            return data
        labels = data.get("labels")
        # YAML users write either `- dog` or `- {name: dog, prompts: [...]}` or `dog: [prompts]`.
        if isinstance(labels, dict):
            labels = [{"name": k, "prompts": v or ()} for k, v in labels.items()]
        elif isinstance(labels, (list, tuple)):
            labels = [{"name": v} if isinstance(v, str) else v for v in labels]
        else:
            return data
        labels = [_spelled(entry, "name", {}) for entry in labels]
        spelling = {key(entry["name"]): entry["name"] for entry in reversed(labels) if _named(entry, "name")}
        labels = [_spelled(entry, "parent", spelling) for entry in labels]
        groups = data.get("groups")
        if isinstance(groups, (list, tuple)):
            groups = [_spelled(entry, "name", spelling) for entry in groups]
        return {**data, "labels": labels, **({"groups": groups} if groups is not None else {})}

    @model_validator(mode="after")
    def _labels_valid(self) -> "Taxonomy":
        if not self.labels:
            raise ValueError("it has no labels")
        seen: set[str] = set()
        for label in self.labels:
            if key(label.name) in seen:
                raise ValueError(f"label {label.name!r} appears twice")
            seen.add(key(label.name))
        parents = {label.name: label.parent for label in self.labels if label.parent is not None}
        for label in self.labels:
            if label.parent is not None and label.parent in self.names and self._label(label.parent).background:
                raise ValueError(f"parent {label.parent!r} of {label.name!r} is a background label")
            chain, node = [label.name], label.parent
            while node is not None:
                if node in chain:
                    raise ValueError(f"parents form a cycle: {' -> '.join([*chain, node])}")
                chain.append(node)
                node = parents.get(node)
        named: set[str] = set()
        for group in self.groups:
            if group.name in named:
                raise ValueError(f"group {group.name!r} appears twice")
            named.add(group.name)
            if group.name in self.names:
                raise ValueError(f"group {group.name!r} is a label: give the label its threshold")
            if group.name not in parents.values():
                raise ValueError(f"group {group.name!r} has no members: no label names it as its parent")
        return self

    def _label(self, name: str) -> Label:
        return next(label for label in self.labels if label.name == name)

    @property
    def names(self) -> list[str]:
        return [label.name for label in self.labels]

    def prompts(self) -> list[list[str]]:
        """The texts to embed for each label, in label order."""
        return [list(label.prompts) or [self.template.format(label.name)] for label in self.labels]

    def canonical(self) -> dict:
        """What decides the scores: name, template, labels and prompts. Thresholds, background
        and parents only decide, so they are left out, and changing them keeps the hash."""
        return {"name": self.name, "template": self.template,
                "labels": [{"name": lb.name, "prompts": list(lb.prompts)} for lb in self.labels]}

    @property
    def content_hash(self) -> str:
        """Identifies what the model is asked: two files with the same labels and prompts hash alike."""
        body = json.dumps(self.canonical(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(body.encode()).hexdigest()

    @property
    def has_policy(self) -> bool:
        return self.threshold is not None or bool(self.groups) or any(
            lb.threshold is not None or lb.background or lb.parent is not None for lb in self.labels)

    def policy(self) -> list[LabelPolicy]:
        """Every label, then every group (a parent that is no label), with its effective
        threshold and the labels that roll up into it. A group's threshold is its own (``groups``),
        else the taxonomy's."""
        children: dict[str, list[str]] = {}
        for label in self.labels:
            if label.parent is not None:
                children.setdefault(label.parent, []).append(label.name)

        def members(node: str) -> tuple[str, ...]:
            below = [node] if node in self.names else []
            for child in children.get(node, []):
                below.extend(members(child))
            return tuple(below)

        parents = {label.parent: None for label in self.labels if label.parent is not None}
        nodes = [LabelPolicy(label=lb.name, threshold=lb.threshold if lb.threshold is not None else self.threshold,
                             background=lb.background, parent=lb.parent, group=False, members=members(lb.name))
                 for lb in self.labels]
        own = {group.name: group.threshold for group in self.groups if group.threshold is not None}
        nodes += [LabelPolicy(label=group, threshold=own.get(group, self.threshold), background=False, parent=None,
                              group=True, members=members(group)) for group in parents if group not in self.names]
        return nodes

    def document(self) -> dict:
        """The whole taxonomy, decision policy included, as a YAML file that load_taxonomy reads."""
        labels = []
        for lb in self.labels:
            entry: dict = {"name": lb.name}
            if lb.prompts:
                entry["prompts"] = list(lb.prompts)
            if lb.threshold is not None:
                entry["threshold"] = lb.threshold
            if lb.background:
                entry["background"] = True
            if lb.parent is not None:
                entry["parent"] = lb.parent
            labels.append(entry)
        body: dict = {"name": self.name, "template": self.template}
        if self.threshold is not None:
            body["threshold"] = self.threshold
        body["labels"] = labels
        if self.groups:
            body["groups"] = [{"name": g.name} | ({"threshold": g.threshold} if g.threshold is not None else {})
                              for g in self.groups]
        return body

    def with_thresholds(self, thresholds: dict[str, float]) -> "Taxonomy":
        """The same taxonomy with these labels' thresholds replaced (the scores, and the hash, stay)."""
        labels = [lb.model_copy(update={"threshold": thresholds[lb.name]}) if lb.name in thresholds else lb
                  for lb in self.labels]
        return self.model_copy(update={"labels": tuple(labels)})


def _named(entry, field: str) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get(field), str)


def _spelled(entry, field: str, spelling: dict[str, str]):
    """``entry`` with its name in ``field`` stripped and in NFC, spelled as ``spelling`` has it
    (the first spelling seen becomes the one). Anything else is left for validation to refuse."""
    if not _named(entry, field):
        return entry
    name = unicodedata.normalize("NFC", entry[field].strip())
    return {**entry, field: spelling.setdefault(key(name), name) if name else name}


def _problem(err: dict) -> str:
    """One pydantic error as a person reads it: unknown keys with the closest valid one."""
    loc = [str(part) for part in err["loc"]]
    where = ".".join(loc[:-1])
    at = f" in {where}" if where else ""
    if err["type"] == "extra_forbidden":
        model = {"labels": Label, "groups": Group}.get(loc[0], Taxonomy) if len(loc) > 1 else Taxonomy
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
    joined = _joined_items(data.get("labels"))
    if joined:
        raise TaxonomyError(f"{path}: label {joined!r} looks like two list items joined by their indentation "
                            f"(a '- ' indented further than the one above continues it); align the dashes, or "
                            f"write {{name: {joined!r}}} if it is one label")
    return _parse(data, str(path))


def _joined_items(labels) -> str | None:
    """The first label written as a plain list item that holds `` - ``: what YAML makes of
    ``- siren`` followed by `` - rain`` indented one space further."""
    if isinstance(labels, list):
        return next((item for item in labels if isinstance(item, str) and " - " in item), None)
    return None


def taxonomy_from_csv(labels: str, name: str | None = None) -> Taxonomy:
    """The ``--labels "dog barking,rain"`` form. Unnamed, it is ``labels-`` and 8 hex digits of
    its hash, so that different label sets never share a name."""
    parsed = _parse({"name": name or "labels", "labels": [s for s in labels.split(",") if s.strip()]}, "--labels")
    return parsed if name else parsed.model_copy(update={"name": f"labels-{parsed.content_hash[:8]}"})


def taxonomy_from_canonical(data: dict) -> Taxonomy:
    return _parse(data, data.get("name", "taxonomy"))
