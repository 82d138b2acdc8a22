"""The layout docs/architecture.md promises, read from that page: each folder imports only the
project's folders its line names, only the folders on the torch line import torch or
transformers, nothing imports bench/, and nothing below the command imports soundtag/cli/."""

import ast
import re

import pytest

from tests.conftest import ROOT

FOLDERS = ("soundtag", "db", "model", "heads", "vectors", "producer", "worker", "review", "bench", "tests")
TORCH = {"torch", "transformers"}


def _rules() -> dict[str, set[str]]:
    """The block under `<!-- layers -->` in docs/architecture.md: a folder, then what it may import."""
    page = (ROOT / "docs" / "architecture.md").read_text()
    block = re.search(r"<!-- layers[^>]*-->\s*```text\n(.*?)```", page, re.S)
    assert block, "docs/architecture.md lost its layers block"
    rules = {}
    for line in block.group(1).splitlines():
        folder, *allowed = line.split()
        rules[folder] = set() if allowed == ["-"] else set(allowed)
    return rules


def _imports(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _folder(path) -> str:
    parts = path.relative_to(ROOT).parts
    return "soundtag/cli" if parts[:2] == ("soundtag", "cli") else parts[0]


def _sources():
    for top in FOLDERS:
        yield from sorted((ROOT / top).rglob("*.py"))


def test_the_page_states_a_rule_for_every_folder():
    assert set(_rules()) == {*FOLDERS, "soundtag/cli", "torch"}


@pytest.mark.parametrize("folder", [*FOLDERS, "soundtag/cli"])
def test_each_folder_imports_only_the_folders_its_line_allows(folder):
    allowed = _rules()[folder] | {folder.split("/")[0]}
    for path in (p for p in _sources() if _folder(p) == folder):
        for name in _imports(path):
            top = name.split(".")[0]
            if top not in FOLDERS:
                continue
            cli = name == "soundtag.cli" or name.startswith("soundtag.cli.")
            assert top in allowed and not (cli and folder not in ("soundtag/cli", "tests")), \
                f"{path.relative_to(ROOT)} imports {name}, which docs/architecture.md does not allow {folder}/"


def test_only_the_torch_line_imports_torch():
    for path in _sources():
        found = {name.split(".")[0] for name in _imports(path)} & TORCH
        assert not found or _folder(path) in _rules()["torch"], f"{path.relative_to(ROOT)} imports {found}"


def test_nothing_imports_bench():
    for path in _sources():
        if _folder(path) != "bench":
            assert not any(name.split(".")[0] == "bench" for name in _imports(path)), path.relative_to(ROOT)
