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
    """The imports that ``forbidden`` names, by package ("worker") or by module ("model.clap")."""
    return {name for name in names if name in forbidden or name.split(".")[0] in forbidden}


TORCH = {"torch", "transformers"}
TOP = {"soundtag.cli", "bench"}


@pytest.mark.parametrize("package, forbidden", [
    # From the bottom up, as docs/architecture.md draws them: each layer imports only those below it.
    ("db", {"producer", "worker", "review", "vectors", "heads", "model"} | TORCH | TOP),
    ("model", {"producer", "worker", "review", "vectors", "heads"} | TOP),
    ("heads", {"producer", "worker", "review", "vectors", "model"} | TORCH | TOP),
    ("vectors", {"producer", "worker", "review"} | TOP),
    ("producer", {"worker", "review", "vectors", "heads", "model"} | TORCH | TOP),
    ("worker", {"producer", "review"} | TOP),
    # The review page reads audio through soundtag.sources; never the labeling side, the model or the producer.
    ("review", {"producer", "worker", "vectors", "model"} | TORCH | TOP),
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
        if path.parent.name == "cli":  # the top of the stack
            continue
        found = _top(_imports(path)) & ({"db", "producer", "worker", "review", "vectors", "heads", "model"} | TORCH)
        assert not found, f"{path.relative_to(ROOT)} imports {found}"
