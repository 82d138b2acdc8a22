"""Hugging Face datasets as sources: a Hub dataset or one on disk, each row's audio one file.

What a person names:

    hf://OWNER/NAME[@REVISION][:SPLIT]   a Hub dataset, through the local Hugging Face cache
                                         (HF_HOME, HF_HUB_OFFLINE and HF_TOKEN are honoured)
    hf://PATH[:SPLIT]                    PATH starting with /, ./, ../ or ~: a folder written by
                                         save_to_disk, a .parquet file, or a folder of Parquet files

Without :SPLIT every split is taken. A row's URI names the dataset, revision, split and row,
``hf://OWNER/NAME[@REVISION]:SPLIT/ROW`` or ``hf:///ABS/PATH:SPLIT/ROW``, followed by ``#COLUMN``
when the audio column is not the dataset's only Audio column.

Audio is read as bytes (``Audio(decode=False)``) and decoded by soundtag.audio, never by datasets,
so neither torchcodec nor FFmpeg is needed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from soundtag.errors import DatasetError
from soundtag.sources import access
from soundtag.sources.uris import shown

SCHEME = "hf://"
_HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
_SOURCE_FORMS = "expected hf://OWNER/NAME[@REVISION][:SPLIT], or hf://PATH[:SPLIT] for a dataset on disk"
_AUDIO_VALUES = {"binary", "large_binary", "string", "large_string"}  # encoded bytes, or paths


@dataclass(frozen=True)
class DatasetRef:
    name: str  # a Hub id, or the absolute path of a dataset on disk
    revision: str | None = None

    @property
    def local(self) -> bool:
        return self.name.startswith("/")

    def __str__(self) -> str:
        return SCHEME + self.name + (f"@{self.revision}" if self.revision else "")

    def row_uri(self, split: str, row: int, column: str | None = None) -> str:
        return f"{self}:{quote(split, safe='')}/{row}" + (f"#{quote(column, safe='')}" if column else "")


@dataclass(frozen=True)
class Row:
    uri: str
    fingerprint: str
    truth: str | None


def parse_source(source: str) -> tuple[DatasetRef, str | None]:
    """``hf://...`` as typed → the dataset and the split asked for (None: all splits)."""
    # huggingface_hub spells Hub datasets hf://datasets/OWNER/NAME; accept that too.
    body = source.removeprefix(SCHEME).removeprefix("datasets/")
    head, sep, split = body.rpartition(":")
    if not sep or "/" in split:
        head, split = body, ""
    if body.startswith(("/", ".", "~")):
        if Path(body).expanduser().exists():  # a path that itself contains ':'
            head, split = body, ""
        return DatasetRef(str(Path(head).expanduser().absolute())), split or None
    name, _, revision = head.partition("@")
    if not _HUB_ID.fullmatch(name):
        raise DatasetError(f"{source}: {_SOURCE_FORMS}")
    return DatasetRef(name, revision or None), split or None


def parse_row(uri: str) -> tuple[DatasetRef, str, int, str | None]:
    """A row URI → (dataset, split, row, audio column or None for the only Audio column)."""
    head, _, tail = uri.removeprefix(SCHEME).rpartition(":")
    where, _, column = tail.partition("#")
    split, _, row = where.partition("/")
    if not head or not split or not row.isdigit():
        raise DatasetError(f"{uri}: not a dataset row; expected hf://DATASET:SPLIT/ROW")
    name, revision = (head, "") if head.startswith("/") else head.partition("@")[::2]
    return DatasetRef(name, revision or None), unquote(split), int(row), unquote(column) or None


def rows(source: str, audio_column: str | None = None, truth_column: str | None = None) -> Iterator[Row]:
    """One Row per dataset row of the source's splits. Reads no audio: only the row count and,
    with ``truth_column``, that column (a ClassLabel gives its class name). Raises DatasetError."""
    ref, split = parse_source(source)
    for name, ds in _load(ref, split).items():
        where = f"{ref}:{name}"
        column, named = _audio_column(ds, audio_column, where)
        truths = _truths(ds, truth_column, where) if truth_column else [None] * len(ds)
        # datasets derives the fingerprint from the Hub commit, or from the saved state or files'
        # modification times on disk: it changes when the data does.
        version = ds._fingerprint
        for row, truth in enumerate(truths):
            yield Row(ref.row_uri(name, row, column if named else None), f"{version}:{row}", truth)


class AudioColumn:
    """One split's audio column, loaded once (callers keep it per process) and read row by row
    from any thread."""

    def __init__(self, ref: DatasetRef, split: str, column: str | None):
        from datasets import Audio

        where = f"{ref}:{split}"
        ds = _load(ref, split)[split]
        self._column, _ = _audio_column(ds, column, where)
        self._rows = ds.select_columns([self._column]).cast_column(self._column, Audio(decode=False))
        self._folder = _folder(ref)

    def read(self, row: int, uri: str) -> bytes:
        """The row's audio bytes; a row holding only a path is read from that path, which must
        name a file inside the dataset's folder. Raises DatasetError."""
        if row >= len(self._rows):
            raise DatasetError(f"{uri}: no such row (the split has {len(self._rows)})")
        value = self._rows[row][self._column] or {}
        if value.get("bytes") is not None:
            return value["bytes"]
        if not value.get("path"):
            raise DatasetError(f"{uri}: the row holds no audio")
        try:
            return Path(access.dataset_file(self._folder, value["path"])).read_bytes()
        except access.Refused as exc:
            raise DatasetError(f"{uri}: {exc}") from None
        except OSError as exc:
            raise DatasetError(f"{uri}: {shown(value['path'])}: {exc.strerror or exc}") from None


def _folder(ref: DatasetRef) -> str:
    """Where a dataset's relative audio paths start, and which its paths may not leave: the
    folder on disk, or the datasets cache that a Hub dataset's files were extracted into."""
    import datasets

    if not ref.local:
        return str(datasets.config.HF_DATASETS_CACHE)
    return ref.name if Path(ref.name).is_dir() else str(Path(ref.name).parent)


def _load(ref: DatasetRef, split: str | None) -> dict:
    """The dataset's splits by name, only ``split`` when given. Raises DatasetError."""
    import datasets

    # soundtag reports its own progress; datasets' bars and cache notices would interleave with it.
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    try:
        if ref.local:
            loaded = _load_local(Path(ref.name))
        else:
            loaded = datasets.load_dataset(ref.name, revision=ref.revision, split=split)
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets, fsspec and the Hub client raise many kinds
        raise _problem(exc, str(ref)) from None
    if isinstance(loaded, datasets.Dataset):  # one split asked for, or a dataset saved on its own
        loaded = {str(loaded.split or "train"): loaded}
    if split is None:
        return dict(loaded)
    if split not in loaded:
        raise DatasetError(f"{ref}: no split {split!r} (splits: {', '.join(loaded)})")
    return {split: loaded[split]}


def _load_local(path: Path):
    import datasets

    if not path.exists():
        raise DatasetError(f"{SCHEME}{path}: no such file or directory")
    if (path / "state.json").is_file() or (path / "dataset_dict.json").is_file():
        return datasets.load_from_disk(str(path))
    if path.is_dir() and next(path.rglob("*.parquet"), None):
        return datasets.load_dataset("parquet", data_dir=str(path))
    if path.is_dir():
        raise DatasetError(f"{SCHEME}{path}: no Parquet files and not saved with save_to_disk; a folder of audio "
                           "files is named without hf:// (its metadata.csv gives --truth-column)")
    if path.suffix.lower() == ".parquet":
        return datasets.load_dataset("parquet", data_files=str(path))
    raise DatasetError(f"{SCHEME}{path}: not a dataset; expected a folder written by save_to_disk, a .parquet "
                       "file or a folder of Parquet files")


def _problem(exc: Exception, where: str) -> DatasetError:
    import datasets

    reason = str(exc).strip().partition("\n")[0]
    if isinstance(exc, ConnectionError):
        if datasets.config.HF_HUB_OFFLINE:
            return DatasetError(f"{where}: not in the Hugging Face cache ({datasets.config.HF_DATASETS_CACHE}) "
                                "and HF_HUB_OFFLINE is set")
        return DatasetError(f"{where}: Hugging Face Hub unreachable ({reason})", transient=True)
    while exc.__cause__ is not None:  # DatasetGenerationError and friends wrap the reason
        exc = exc.__cause__
        reason = str(exc).strip().partition("\n")[0]
    return DatasetError(f"{where}: {reason or exc.__class__.__name__}")


def _audio_column(ds, wanted: str | None, where: str) -> tuple[str, bool]:
    """The audio column to read, and whether row URIs must name it (it is not the dataset's
    only Audio column)."""
    from datasets import Audio, Value

    audio = [name for name, feature in ds.features.items() if isinstance(feature, Audio)]
    if wanted is None:
        if len(audio) == 1:
            return audio[0], False
        if audio:
            raise DatasetError(f"{where}: several Audio columns ({', '.join(audio)}); choose one with --audio-column")
        raise DatasetError(f"{where}: no Audio column; name the column that holds audio with --audio-column "
                           f"(columns: {', '.join(ds.column_names)})")
    feature = _feature(ds, wanted, where)
    # What Audio(decode=False) can be cast from: bytes, a path, or a {bytes, path} struct.
    holds_audio = (isinstance(feature, Audio) or (isinstance(feature, dict) and {"bytes", "path"} & set(feature))
                   or (isinstance(feature, Value) and feature.dtype in _AUDIO_VALUES))
    if not holds_audio:
        raise DatasetError(f"{where}: column {wanted!r} holds {feature}, not audio bytes or paths")
    return wanted, audio != [wanted]


def _truths(ds, column: str, where: str) -> list[str | None]:
    from datasets import ClassLabel

    feature = _feature(ds, column, where)
    values = ds.select_columns([column]).with_format("arrow")[:][column].to_pylist()
    if isinstance(feature, ClassLabel):
        # -1 is datasets' "no label".
        return [feature.int2str(v) if v is not None and v >= 0 else None for v in values]
    return [None if v is None else str(v) for v in values]


def _feature(ds, column: str, where: str):
    if column not in ds.features:
        raise DatasetError(f"{where}: no column {column!r} (columns: {', '.join(ds.column_names)})")
    return ds.features[column]
