"""The layout docs/architecture.md promises: the producer and the workers meet only in
soundtag/fleet.py, shared modules carry no torch, and tests stand on their own."""

import ast

import pytest

from tests.conftest import ROOT


def _imports(path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _top(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


def _forbidden(names: set[str], forbidden: set[str]) -> set[str]:
    """The imports that ``forbidden`` names, by package ("worker") or by module ("worker.clap")."""
    return {name for name in names if name in forbidden or name.split(".")[0] in forbidden}


@pytest.mark.parametrize("package, forbidden", [
    ("producer", {"worker", "torch", "transformers", "bench"}),
    ("worker", {"producer", "bench"}),
    ("db", {"producer", "worker", "review", "soundtag.cli", "torch", "transformers", "bench"}),
    # The review page reads audio through soundtag.sources; never the labeling side, the model or the producer.
    ("review", {"producer", "worker", "torch", "transformers", "bench"}),
    ("soundtag", {"bench"}),
    ("tests", {"bench"}),
])
def test_packages_import_only_what_the_layout_allows(package, forbidden):
    for path in sorted((ROOT / package).rglob("*.py")):
        assert not _forbidden(_imports(path), forbidden), f"{path.relative_to(ROOT)} imports {_forbidden(_imports(path), forbidden)}"


def test_shared_modules_need_neither_torch_nor_the_sides():
    paths = sorted((ROOT / "soundtag").rglob("*.py"))
    assert any(path.parent.name == "sources" for path in paths)
    for path in paths:
        # soundtag/cli/ is the top of the stack; random_clap a tool that builds models.
        if path.parent.name == "cli" or path.name == "random_clap.py":
            continue
        assert not _top(_imports(path)) & {"torch", "transformers", "producer", "worker", "review"}, path.name
