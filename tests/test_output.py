"""What soundtag prints: user text (folders, file names, labels) exactly as written, whatever
brackets it holds, and every line through the one masking console."""

from __future__ import annotations

from tests.audio_files import write
from tests.conftest import soundtag

MARKUP = "[/]"
BOLD = "[bold]"


def test_user_text_with_markup_prints_as_written(tmp_path, tiny_clap, sqlite_url):
    archive = tmp_path / f"take {MARKUP} one {BOLD}"
    write(archive / f"{BOLD}a.wav")
    (archive / f"{BOLD}broken.wav").write_bytes(b"RIFF not audio at all")
    labels = f"{BOLD}dog,rain{MARKUP}"
    run = soundtag("run", str(archive), "--labels", labels, "--model", str(tiny_clap), "--database", sqlite_url,
                   check=False)
    assert run.returncode == 0, run.stderr
    assert f"failed {archive}/{BOLD}broken.wav" in run.stderr  # the failure line, as written

    jobs = soundtag("jobs", "--database", sqlite_url, check=False)
    assert jobs.returncode == 0, jobs.stderr
    assert MARKUP in jobs.stdout and BOLD in jobs.stdout

    tags = soundtag("export", "--format", "csv", "--database", sqlite_url, "--out", str(tmp_path / "o.csv"),
                    check=False)
    assert tags.returncode == 0, tags.stderr

    # An error about user text is one line, naming it as written, with no traceback.
    missing = soundtag("status", f"job{MARKUP}{BOLD}", "--database", sqlite_url, check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip().splitlines() == [missing.stderr.strip()]
    assert f"job{MARKUP}{BOLD}" in missing.stderr and "Traceback" not in missing.stderr
