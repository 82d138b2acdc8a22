"""The README and the documentation site: every example runs as written against the example
archive, the generated reference is fresh, and `mkdocs build --strict` passes.

The convention (docs/development.md): every ```bash, ```sh and ```sql block of README.md and
docs/ runs, page by page in order, in a copy of a workspace where the example archive is labeled,
unless the nearest line above it is `<!-- not tested: REASON -->`. A ```text block right after one
is its expected output (the last SQL statement's rows as `a|b|c`), compared as doctest does with
ELLIPSIS and NORMALIZE_WHITESPACE: `...` stands for what varies (labels, scores, ids).
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN = {"bash", "sh", "sql"}
_FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
_SKIP = re.compile(r"^\s*<!-- not tested: \S.* -->\s*$")


@dataclass
class Example:
    page: Path
    line: int
    lang: str
    code: str
    expected: str | None = None

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def examples(page: Path) -> list[Example]:
    """The page's examples that run, each with its expected output if one follows it."""
    lines = page.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        start, indent, lang = i, fence["indent"], fence["lang"]
        i += 1
        body = []
        while lines[i].strip() != "```":
            body.append(lines[i][len(indent):])
            i += 1
        before = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        # The README opens with the set-up commands, which CI runs (.ci/run; checked below).
        opening = page.name == "README.md" and not blocks
        blocks.append((start, lang, "\n".join(body) + "\n", opening or bool(_SKIP.match(before)), i))
        i += 1
    found: dict[int, Example] = {}
    for n, (start, lang, code, skipped, end) in enumerate(blocks):
        follows = n - 1 in found and not any(line.strip() for line in lines[blocks[n - 1][4] + 1:start])
        if lang == "text" and follows:
            found[n - 1].expected = code
        elif lang in RUN and not skipped:
            found[n] = Example(page, start + 1, lang, code)
    return list(found.values())


def _gen_reference():
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def workspace(tmp_path_factory, tiny_clap) -> tuple[Path, Path]:
    """A folder as `bash examples/quickstart.sh` leaves the repository: the example archive and
    taxonomy under examples/, labeled into ./soundtag.db; `soundtag` on PATH runs this checkout.
    Returns where pages run and a pristine copy to restore there before each page (at the same
    path, since the database names the files by their absolute paths)."""
    base = tmp_path_factory.mktemp("docs")
    ws = base / "ws"
    (ws / "examples").mkdir(parents=True)
    shutil.copy(ROOT / "examples" / "taxonomy.yaml", ws / "examples")
    (ws / "bin").mkdir()
    wrapper = ws / "bin" / "soundtag"
    wrapper.write_text(f"#!{sys.executable}\nimport sys\nfrom soundtag.cli import main\nsys.exit(main())\n")
    wrapper.chmod(0o755)
    _sh(ws, "python -m examples.make_archive examples/archive "
            "&& soundtag run examples/archive --taxonomy examples/taxonomy.yaml", _env(ws, tiny_clap))
    shutil.copytree(ws, base / "pristine", symlinks=True)
    return ws, base / "pristine"


def _env(ws: Path, model: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDTAG_")}
    env.update(PATH=f"{ws / 'bin'}:{Path(sys.executable).parent}:{env['PATH']}", PYTHONPATH=str(ROOT),
               SOUNDTAG_DATABASE_URL=f"sqlite:///{ws / 'soundtag.db'}", SOUNDTAG_MODEL=str(model),
               SOUNDTAG_INDEX_DIR=str(ws / "index"), HF_HUB_OFFLINE="1")
    return env


def _sh(ws: Path, code: str, env: dict) -> subprocess.CompletedProcess:
    """Runs a block as a terminal would show it: stdout and stderr together."""
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=ws, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)
    assert done.returncode == 0, f"exit {done.returncode}\n{code}\n{done.stdout[-3000:]}"
    return done


def _sql(ws: Path, code: str) -> str:
    db = sqlite3.connect(ws / "soundtag.db")
    statement, rows = "", []
    for line in code.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            rows = db.execute(statement).fetchall()
            statement = ""
    db.close()
    return "".join("|".join("" if v is None else str(v) for v in row) + "\n" for row in rows)


def _matches(expected: str, got: str) -> bool:
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    return doctest.OutputChecker().check_output(expected, got, flags)


@pytest.mark.parametrize("page", [p for p in PAGES if examples(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run_as_written(page, workspace, tiny_clap):
    ws, pristine = workspace
    shutil.rmtree(ws)
    shutil.copytree(pristine, ws, symlinks=True)
    env = _env(ws, tiny_clap)
    for example in examples(page):
        try:
            got = _sh(ws, example.code, env).stdout if example.lang != "sql" else _sql(ws, example.code)
        except (AssertionError, sqlite3.Error) as exc:
            pytest.fail(f"{example}: the example fails: {exc}")
        if example.expected is not None:
            assert _matches(example.expected, got), f"{example}: printed\n{got}\nthe page shows\n{example.expected}"
    if page.name == "README.md":  # what the loop leaves in a clone is ignored: `git status` stays clean
        made = [str(path.relative_to(ws)) for path in ws.rglob("*") if path.is_file() and not path.is_symlink()
                and path.relative_to(ws).parts[0] not in {"bin", "index"}]  # the test's own: its soundtag, index
        ignored = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "--no-index", "--stdin"], text=True,
                                 input="\n".join(made), capture_output=True).stdout.split()
        assert sorted(set(made) - set(ignored) - {"examples/taxonomy.yaml"}) == []


def test_readme_opens_with_the_two_setup_commands_ci_runs():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert lines[:5] == [
        "# soundtag", "", "```bash",
        "./setup.sh && bash examples/quickstart.sh                              "
        "# label an example archive into ./soundtag.db",
        "bash .ci/services && ./setup.sh && .venv/bin/python -m pytest          "
        "# the tests (local PostgreSQL, Redis, Chromium)"]
    assert lines[5] == "```"
    assert (ROOT / ".ci" / "run").read_text().splitlines()[-1] == lines[4].split("#")[0].rstrip()


def test_readme_stays_short_and_its_links_resolve():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 160
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README links to {target}, which does not exist"


def test_compose_lines_in_the_docs_name_services_the_compose_file_has():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = set(compose["services"])
    profiles = {p for s in compose["services"].values() for p in s.get("profiles", [])}
    for page in PAGES:
        for line in re.findall(r"docker compose [^\n`#]*", page.read_text()):
            named = re.findall(r"--scale (\w+)=", line) + re.findall(r"run --rm (\w+)", line)
            if up := re.search(r"\bup -d((?: [a-z][\w-]*)*)\s*$", line.strip()):
                named += up[1].split()
            assert set(named) <= services, f"{page.name}: `{line.strip()}`: no such service in docker-compose.yml"
            assert set(re.findall(r"--profile (\w+)", line)) <= profiles, f"{page.name}: `{line.strip()}`"


def test_generated_reference_is_fresh_and_complete():
    """The command reference, the views' columns, the settings and the errors match the code."""
    assert _gen_reference().problems() == []


def test_site_builds_strict_and_loads_nothing_from_the_network(tmp_path):
    """A broken link, a missing anchor or a page left out of the navigation fails the build; no
    page loads a font, script or style from elsewhere."""
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert (tmp_path / "site" / "reference" / "views" / "index.html").exists()
    for page in (tmp_path / "site").rglob("*.html"):
        fetched = re.findall(r'<(?:script|link|img)[^>]*(?:src|href)="(https?://[^"]+)"', page.read_text())
        assert not fetched, f"{page.name} loads {fetched} from the network"
