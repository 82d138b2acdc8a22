"""Label Studio round trips: a job's files as tasks with predictions (and the labeling config
that shows them), and a Label Studio JSON export's annotations back as verdicts in the
``review`` table, through db.reviews as the review page records them.

A task's ``data`` holds ``audio`` (what Label Studio plays), ``uri`` (the file's exact URI) and
``job``: the import maps annotations back by ``uri``, so tasks survive whatever URL rewriting
``audio`` needs."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from pydantic import BaseModel, ConfigDict, StrictBool, StrictStr, TypeAdapter, ValidationError
from sqlalchemy import Engine

from db.decisions import model_decisions
from db.files import durations, job_file_ids
from db.jobs import job_spec
from db.labeled_files import LabeledFile
from db.reviews import Given, all_verdicts, record_verdicts
from db.segments import EventRow, job_events
from review.regions import region_verdict, span_problem
from soundtag.errors import SoundtagError
from soundtag.sources import uris
from soundtag.states import Verdict
from soundtag.taxonomy import Taxonomy

AUDIO, REGIONS, DECISION = "audio", "labels", "decision"  # the config's tag names
# Label Studio serves local files under this path when LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED
# is true, relative to LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT (here: /).
LOCAL_FILES = "/data/local-files/?d="
NONE = "none"  # the choice meaning "no label of the taxonomy" (a reject), unless a label has that name


def audio_ref(uri: str) -> str:
    """What Label Studio's <Audio> loads: local files through its local-files server (the path
    percent-encoded as in the URI), other URIs (s3://, which its cloud storage resolves) as they are."""
    return LOCAL_FILES + uri.removeprefix(uris.FILE + "/") if uri.startswith(uris.FILE) else uri


def uri_of(audio: str) -> str:
    """The inverse of ``audio_ref``."""
    return uris.FILE + "/" + audio.removeprefix(LOCAL_FILES) if audio.startswith(LOCAL_FILES) else audio


def config(taxonomy: Taxonomy) -> str:
    """The labeling config: the recording, a region label per taxonomy node (labels and groups,
    as events name them), and one choice per label for the file's decision, plus ``none``."""
    view = ElementTree.Element("View")
    ElementTree.SubElement(view, "Audio", name=AUDIO, value="$" + AUDIO)
    regions = ElementTree.SubElement(view, "Labels", name=REGIONS, toName=AUDIO)
    for node in taxonomy.policy():
        ElementTree.SubElement(regions, "Label", value=node.label)
    choices = ElementTree.SubElement(view, "Choices", name=DECISION, toName=AUDIO, choice="single")
    for name in [*taxonomy.names, no_label(taxonomy)]:
        ElementTree.SubElement(choices, "Choice", value=name)
    ElementTree.indent(view)
    return ElementTree.tostring(view, encoding="unicode") + "\n"


def no_label(taxonomy: Taxonomy) -> str:
    """The choice that means "none of the taxonomy's labels": ``none``, or, when a label has that
    name (in any case), the first of ``none (no label)``, ``none (no label) 2``... that none has.
    Export and import derive it from the job's taxonomy alike, so a label is never read as a reject."""
    taken = {name.casefold() for name in taxonomy.names}
    candidates = itertools.chain([NONE, f"{NONE} (no label)"], (f"{NONE} (no label) {n}" for n in itertools.count(2)))
    return next(name for name in candidates if name.casefold() not in taken)


def task(file: LabeledFile, job_id: str, model: str, reject: str, reviewed: bool = False) -> dict:
    """One file as a task whose prediction holds its label (``reject`` for none) as the choice and
    its events as regions; with ``reviewed``, the verdicts' labels (segment verdicts over the
    events, a rejected event left out, and a reviewer's segment that is no event added)."""
    prefix = f"{file.file_id}-"
    spans = [(ev.start_s, ev.end_s, file.segment_label(ev.start_s, ev.end_s, ev.label, reviewed), ev.similarity)
             for ev in file.events]
    if reviewed:
        spans += [(v.start_s, v.end_s, v.final, None) for v in file.segment_verdicts
                  if not any(v.start_s == ev.start_s and v.end_s == ev.end_s for ev in file.events)]
    result = [{"id": prefix + DECISION, "from_name": DECISION, "to_name": AUDIO, "type": "choices",
               "value": {"choices": [file.label(reviewed) or reject]}}]
    result += [{"id": f"{prefix}{n}", "from_name": REGIONS, "to_name": AUDIO, "type": "labels",
                "original_length": file.duration_s, **({"score": score} if score is not None else {}),
                "value": {"start": start, "end": end, "channel": 0, "labels": [label]}}
               for n, (start, end, label, score) in enumerate(spans) if label is not None]
    score = file.decision.score if file.decision else file.top.score
    return {"data": {AUDIO: audio_ref(file.uri), "uri": file.uri, "job": job_id},
            "predictions": [{"model_version": model, "score": score, "result": result}]}


def write(chunks: Iterable[list[LabeledFile]], out: Path, job_id: str, model: str, taxonomy: Taxonomy,
          reviewed: bool) -> tuple[int, Path]:
    """Write the tasks to ``out`` as a JSON list, one task per line, and the config beside it
    (``out`` with the suffix ``.xml``, or ``.config.xml`` if that is ``out``); returns how many
    tasks and the config's path."""
    written, reject = 0, no_label(taxonomy)
    with out.open("w", encoding="utf-8") as handle:
        handle.write("[")
        for files in chunks:
            for file in files:
                handle.write(("," if written else "") + "\n" + json.dumps(
                    task(file, job_id, model, reject, reviewed), ensure_ascii=False))
                written += 1
        handle.write("\n]\n")
    config_path = out.with_suffix(".config.xml" if out.suffix == ".xml" else ".xml")
    config_path.write_text(config(taxonomy), encoding="utf-8")
    return written, config_path


@dataclass
class Imported:
    """What an import did, annotation by annotation."""

    recorded: int = 0
    unchanged: int = 0  # the same verdict is already in force: a repeated import records nothing
    cancelled: int = 0  # skipped in Label Studio
    unknown_tasks: int = 0  # no such file in the job
    unknown_labels: int = 0  # a label the taxonomy lacks


# The parts of a Label Studio JSON export the import reads, checked whole before anything is
# written; whatever else Label Studio puts there is ignored.
class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Value(_Part):
    choices: list[StrictStr] = []
    labels: list[StrictStr] = []
    start: float = 0.0
    end: float = 0.0


class _Result(_Part):
    type: StrictStr | None = None
    value: _Value = _Value()


class _Annotation(_Part):
    result: list[_Result] = []
    was_cancelled: StrictBool = False
    completed_by: int | StrictStr | dict | None = None
    created_at: StrictStr | None = None
    id: int | StrictStr | None = None


class _Data(_Part):
    audio: StrictStr | None = None
    uri: StrictStr | None = None
    job: StrictStr | None = None


class _Task(_Part):
    data: _Data = _Data()
    annotations: list[_Annotation] | None = None


_TASKS = TypeAdapter(list[_Task])
# Pydantic's error types (less _type, _parsing) as what the JSON should have held, in JSON's words.
_EXPECTED = {"list": "a list", "string": "a string", "model": "an object", "dict": "an object",
             "bool": "true or false", "float": "a number", "int": "a number"}
_JSON_TYPES = {list: "a list", str: "a string", dict: "an object", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}


def read_tasks(path: Path) -> list[_Task]:
    """The tasks of a Label Studio JSON export. Raises SoundtagError naming the first problem:
    the task's index and the field."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except RecursionError:
        raise SoundtagError(f"{path}: not a Label Studio JSON export (nested too deeply)") from None
    except (OSError, ValueError) as exc:
        raise SoundtagError(f"{path}: not a Label Studio JSON export ({exc})") from None
    if not isinstance(raw, list):
        raise SoundtagError(f"{path}: not a Label Studio JSON export (a list of tasks)")
    try:
        tasks = _TASKS.validate_python(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        index, *field = error["loc"]
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in field).lstrip(".")
        expected = _EXPECTED.get(error["type"].removesuffix("_parsing").removesuffix("_type"))
        problem = f"expected {expected}, not {_JSON_TYPES.get(type(error['input']), 'this')}" if expected \
            else error["msg"]
        raise SoundtagError(f"{path}: task {index}: {where or 'the task'}: {problem}"
                            + (f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else "")) from None
    for index, entry in enumerate(tasks):
        for a, annotation in enumerate(entry.annotations or []):
            for r, item in enumerate(annotation.result):
                if item.type == "labels" and (problem := span_problem(item.value.start, item.value.end)):
                    raise SoundtagError(f"{path}: task {index}: annotations[{a}].result[{r}].value: {problem}")
    return tasks


KEEP = object()  # an annotation that says nothing about the whole file


def chosen(result: list[_Result], reject: str):
    """The file's label in an annotation: its choice (``reject``: none); with no choice, no label
    when the annotation is empty, and ``KEEP`` when it only marks regions (they are verdicts on
    segments: ``regions``)."""
    for item in result:
        if item.type == "choices":
            picked = item.value.choices or [reject]
            return None if picked[0] == reject else picked[0]
    return KEEP if regions(result) else None


def regions(result: list[_Result]) -> list[tuple[float, float, str]]:
    """The annotation's region labels: (start, end, label), in seconds."""
    return [(item.value.start, item.value.end, name) for item in result if item.type == "labels"
            for name in item.value.labels]


def _reviewer(annotation: _Annotation, given: str | None) -> str:
    who = annotation.completed_by
    if given:
        return given
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return f"label-studio:{who}" if who is not None else "label-studio"


def import_reviews(engine: Engine, path: Path, default_job: str | None, reviewer: str | None = None) -> Imported:
    """Record each annotation of a Label Studio JSON export as a verdict on its file's decision by
    the model of the task's job (``default_job`` for tasks without one): ``accept`` when it keeps
    the decision, ``correct`` when it names another label, ``reject`` when it names none; and
    each of its regions as a verdict on that segment (``accept`` when the model has an event of
    that label there, ``correct`` otherwise). A verdict already in force records nothing, so
    importing twice is harmless.
    The whole file is checked first (read_tasks, every job it names, and each region against its
    recording's duration: a region that is no span of it is refused naming its task), then every
    verdict is written in one transaction; decisions are read once per job: the ``file_decisions`` view
    costs as much for one file as for thousands."""
    by_job: dict[str | None, list[tuple[int, str, list[_Annotation]]]] = {}
    for index, entry in enumerate(read_tasks(path)):
        uri = entry.data.uri or uri_of(entry.data.audio or "")
        by_job.setdefault(entry.data.job or default_job, []).append((index, uri, entry.annotations or []))
    done = Imported()
    given: dict[str, list] = {}
    for job_id, entries in by_job.items():
        spec = job_spec(engine, job_id) if job_id else None
        ids = job_file_ids(engine, job_id, [uri for _, uri, _ in entries]) if spec else {}
        if spec:
            lengths = durations(engine, list(ids.values()))
            decisions = model_decisions(engine, spec.model, spec.taxonomy_id, list(ids.values()))
            in_force = all_verdicts(engine, job_id)
            reject = no_label(spec.taxonomy)
            nodes = {node.label for node in spec.taxonomy.policy()}
            events: dict[int, list[EventRow]] = {}
            for event in job_events(engine, job_id):
                events.setdefault(event.file_id, []).append(event)

        def record(one: Given) -> None:
            if in_force.get(one.key) == (one.verdict, one.label):
                done.unchanged += 1
            else:
                given.setdefault(job_id, []).append(one)
                in_force[one.key] = (one.verdict, one.label)

        for index, uri, annotations in entries:
            file_id = ids.get(uri)
            if file_id is None:
                done.unknown_tasks += 1
                continue
            for annotation in sorted(annotations, key=lambda a: (a.created_at or "", str(a.id or ""))):
                if annotation.was_cancelled:
                    done.cancelled += 1
                    continue
                who = _reviewer(annotation, reviewer)
                label = chosen(annotation.result, reject)
                if label is not None and label is not KEEP and label not in spec.taxonomy.names:
                    done.unknown_labels += 1
                elif label is not KEEP:
                    decision = decisions.get(file_id)
                    verdict = (Verdict.ACCEPT if label == decision else Verdict.REJECT if label is None
                               else Verdict.CORRECT)
                    record(Given(file_id, verdict, who, label if verdict == Verdict.CORRECT else decision,
                                 shown=decision))
                for start, end, name in regions(annotation.result):
                    if problem := span_problem(start, end, lengths.get(file_id)):
                        raise SoundtagError(f"{path}: task {index}: {problem}")
                    if name not in nodes:
                        done.unknown_labels += 1
                        continue
                    record(region_verdict(events.get(file_id, ()), file_id, start, end, name, who))
    record_verdicts(engine, given)
    done.recorded = sum(map(len, given.values()))
    return done
