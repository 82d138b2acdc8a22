"""The documentation's generated parts, written from the code they describe so they cannot drift.

A page marks each generated part:

    <!-- generated: KIND [NAMES] -->
    ...
    <!-- end generated -->

    cli CMD...     the reference of these `soundtag` commands (usage, help, arguments and options),
                   from the Typer app, as `soundtag CMD --help` prints them
    view NAME      the columns of a SQL view, in order, read from a freshly migrated SQLite database
    settings       every SOUNDTAG_* setting with its default, from soundtag/settings.py
    errors         every error class of soundtag/errors.py with its docstring

Tables keep their hand-written cells (a column's meaning, what to do about an error) by the row's
first cell; a row the code gained shows up with TODO in them, a row the code lost disappears.

    python docs/gen_reference.py           rewrite the pages in place
    python docs/gen_reference.py --check   name the stale pages and the TODO cells; exit 1 if any

mkdocs loads this file as a hook (mkdocs.yml `hooks:`), so a build always renders the fresh parts;
tests/test_docs.py runs the check, so the committed pages are fresh too.
"""

from __future__ import annotations

import functools
import inspect
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
# The reference describes the code of this checkout, whatever else is installed.
sys.path.insert(0, str(ROOT))

TODO = "TODO"
_BLOCK = re.compile(r"(<!-- generated: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _cell(text: str) -> str:
    """One table cell: one line, its pipes escaped, and `<` outside code spans kept as text."""
    spans = re.split(r"(`[^`]*`)", " ".join(text.split()).replace("|", "\\|"))
    return "".join(s if s.startswith("`") else s.replace("<", "&lt;") for s in spans)


def _table(header: list[str], rows: list[list[str | None]], old: str) -> str:
    """A Markdown table; a None cell takes the old table's cell of the same row (its first cell)
    and column, or TODO."""
    kept = {}
    for line in old.splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells:
            kept[cells[0]] = cells
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        first = row[0]
        cells = [c if c is not None else (kept.get(first, [])[i:i + 1] or [TODO])[0] for i, c in enumerate(row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _cli(names: list[str], old: str) -> str:
    import click
    import typer

    from soundtag.cli import app

    root = typer.main.get_command(app)
    parent = click.Context(root, info_name="soundtag")
    parts = []
    for name in names:
        command = root.commands.get(name)
        if command is None:
            raise SystemExit(f"docs: `soundtag {name}` is documented but the command does not exist")
        subcommands = getattr(command, "commands", None)
        for cmd, ctx in ([(c, click.Context(c, info_name=n, parent=click.Context(command, info_name=name,
                                                                                    parent=parent)))
                          for n, c in subcommands.items()] if subcommands else
                         [(command, click.Context(command, info_name=name, parent=parent))]):
            usage = cmd.get_usage(ctx).removeprefix("Usage: ")
            rows = [record for p in cmd.params if (record := p.get_help_record(ctx))]
            parts.append(f"### `{ctx.command_path}`\n\n" + inspect.cleandoc(cmd.help or "") + "\n\n"
                         + f"```text\n{usage}\n```\n\n"
                         + ("| argument / option | |\n|---|---|\n"
                            + "".join(f"| {_cell(f'`{n}`')} | {_cell(h)} |\n" for n, h in rows) if rows else ""))
    return "\n".join(parts)


@functools.cache
def _view_columns() -> dict[str, list[str]]:
    import sqlalchemy as sa

    from db.schema import engine_for, upgrade

    with tempfile.TemporaryDirectory() as folder:
        engine = engine_for(f"sqlite:///{folder}/views.db")
        upgrade(engine)
        with engine.connect() as db:
            views = [n for (n,) in db.execute(sa.text("select name from sqlite_master where type = 'view'"))]
            columns = {v: [r[1] for r in db.execute(sa.text(f'pragma table_info("{v}")'))] for v in views}
        engine.dispose()
    return columns


def _view(names: list[str], old: str) -> str:
    (name,) = names
    columns = _view_columns()
    if name not in columns:
        raise SystemExit(f"docs: the view {name} is documented but the schema has no such view")
    return _table(["column", "meaning"], [[f"`{c}`", None] for c in columns[name]], old)


def _settings(names: list[str], old: str) -> str:
    from pydantic_core import PydanticUndefined

    from soundtag.settings import Settings

    rows = []
    for field, info in Settings.model_fields.items():
        default = info.default
        shown = None if default is PydanticUndefined else ("—" if default in (None, []) else f"`{default}`")
        rows.append([f"`SOUNDTAG_{field.upper()}`", shown, None])
    return _table(["setting", "default", "meaning"], rows, old)


def _errors(names: list[str], old: str) -> str:
    from soundtag import errors

    classes = sorted((c for n, c in vars(errors).items()
                      if inspect.isclass(c) and issubclass(c, Exception) and c.__module__ == errors.__name__
                      and not n.startswith("_")), key=lambda c: inspect.getsourcelines(c)[1])
    return _table(["error", "what it means", "what to do"],
                  [[f"`{c.__name__}`", _cell(inspect.getdoc(c) or ""), None] for c in classes], old)


_KINDS = {"cli": _cli, "view": _view, "settings": _settings, "errors": _errors}


def render(markdown: str) -> str:
    """The page with every generated part written afresh."""
    def part(match: re.Match) -> str:
        kind, *names = match["spec"].split()
        if kind not in _KINDS:
            raise SystemExit(f"docs: unknown generated part {kind!r} (one of {', '.join(_KINDS)})")
        return match.group(1) + _KINDS[kind](names, match["body"]) + match.group(4)
    return _BLOCK.sub(part, markdown)


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "<!-- generated:" in p.read_text())


def _documented(kind: str) -> set[str]:
    return {name for page in pages() for match in _BLOCK.finditer(page.read_text())
            if (spec := match["spec"].split())[0] == kind for name in spec[1:]}


def _undocumented() -> list[str]:
    """The commands and views that no page's generated part covers."""
    import typer

    from soundtag.cli import app

    commands = set(typer.main.get_command(app).commands) - _documented("cli")
    views = set(_view_columns()) - _documented("view")
    return ([f"soundtag {c}: in no page; add it to a `<!-- generated: cli ... -->` part of docs/commands/"
             for c in sorted(commands)]
            + [f"view {v}: in no page; add a `<!-- generated: view {v} -->` part to docs/reference/views.md"
               for v in sorted(views)])


def problems() -> list[str]:
    """What --check reports: pages whose generated parts are stale, cells still TODO, and
    commands and views no page documents."""
    found = _undocumented()
    for page in pages():
        text, fresh = page.read_text(), render(page.read_text())
        name = page.relative_to(ROOT)
        if fresh != text:
            found.append(f"{name}: generated parts are stale; run `python docs/gen_reference.py`")
        for line in fresh.splitlines():
            if f"| {TODO} |" in line or line.endswith(f"| {TODO}"):
                found.append(f"{name}: describe {line.split('|')[1].strip()} (a {TODO} cell)")
    return found


def on_page_markdown(markdown: str, **_) -> str:
    """mkdocs hook: the site shows the generated parts as the code is now."""
    return render(markdown)


def main(argv: list[str]) -> int:
    if "--check" in argv:
        found = problems()
        print("\n".join(found) or "docs: generated parts are fresh")
        return 1 if found else 0
    for page in pages():
        text = page.read_text()
        if (fresh := render(text)) != text:
            page.write_text(fresh)
            print(f"wrote {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
