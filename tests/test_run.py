"""`soundtag run` as a user calls it, on SQLite and on the real PostgreSQL, queried through the views."""

import os

import pytest

from tests.audio_files import write
from tests.conftest import query, soundtag

LABELS = "dog barking,rain,siren"


def _archive(root):
    write(root / "a.wav", seconds=3.0, rate=44100)
    write(root / "nested" / "b.flac", seconds=2.0, rate=96000, channels=2)
    write(root / "nested" / "deeper" / "c.mp3", seconds=4.0, rate=22050)
    write(root / "d.m4a", seconds=2.0, rate=44100, channels=2)
    write(root / "long.ogg", seconds=25.0, rate=16000)
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt nonsense")
    (root / "empty.flac").write_bytes(b"")
    (root / "notes.txt").write_text("not audio, not an audio extension")
    return root


def test_run_labels_folder_and_records_failures(tmp_path, tiny_clap, database_url):
    archive = _archive(tmp_path / "archive")
    proc = soundtag("run", str(archive), "--labels", LABELS, "--model", str(tiny_clap), "--database", database_url)
    assert "5 labeled, 2 failed, 0 skipped" in proc.stderr

    files = {uri.rsplit("/", 1)[1]: (status, error, duration, rate, channels) for uri, status, error, duration, rate, channels
             in query(database_url, "select uri, status, error, duration_s, sample_rate, channels from files")}
    assert set(files) == {"a.wav", "b.flac", "c.mp3", "d.m4a", "long.ogg", "corrupt.wav", "empty.flac"}
    assert files["b.flac"][0] == "done" and files["b.flac"][3:] == (96000, 2)
    assert files["long.ogg"][2] == pytest.approx(25.0)
    assert files["empty.flac"][:2] == ("failed", "empty file (0 bytes)")
    assert files["corrupt.wav"][0] == "failed" and files["corrupt.wav"][1].startswith("corrupt audio file")

    per_file = query(database_url, "select uri, count(*), sum(score), min(rank), max(rank) from file_labels group by uri")
    assert len(per_file) == 5
    for _uri, count, total, lo, hi in per_file:
        assert (count, lo, hi) == (3, 1, 3) and total == pytest.approx(1.0)
    top = query(database_url, "select uri, label, model, taxonomy from file_labels where rank = 1")
    assert {row.model for row in top} == {str(tiny_clap)} and {row.taxonomy for row in top} == {"cli"}

    windows = query(database_url, "select distinct start_s, end_s from segment_labels where uri like '%long.ogg' order by 1")
    assert [tuple(w) for w in windows] == [(0.0, 10.0), (10.0, 20.0), (15.0, 25.0)]
    assert os.path.abspath(archive / "a.wav") in query(database_url, "select uri from files where uri like '%a.wav'")[0].uri


def test_rerun_skips_and_force_relabels_without_duplicates(tmp_path, tiny_clap, database_url):
    archive = tmp_path / "archive"
    write(archive / "a.wav", seconds=2.0)
    write(archive / "b.wav", seconds=3.0)
    args = ("run", str(archive), "--labels", LABELS, "--model", str(tiny_clap), "--database", database_url)
    soundtag(*args)
    first = query(database_url, "select uri, label, score, run_id from file_labels order by uri, label")

    assert "0 labeled, 0 failed, 2 skipped" in soundtag(*args).stderr

    write(archive / "b.wav", seconds=4.0, freq=880.0)  # the content changes: b is labeled again
    assert "1 labeled, 0 failed, 1 skipped" in soundtag(*args).stderr

    assert "2 labeled, 0 failed, 0 skipped" in soundtag(*args, "--force").stderr
    after = query(database_url, "select uri, label, score, run_id from file_labels order by uri, label")
    assert len(after) == len(first) == 6
    assert [r.score for r in after if r.uri.endswith("a.wav")] == pytest.approx([r.score for r in first if r.uri.endswith("a.wav")])
    assert len(query(database_url, "select * from segment_labels")) == 6


def test_other_taxonomy_labels_the_same_files_again(tmp_path, tiny_clap, sqlite_url):
    archive = tmp_path / "archive"
    write(archive / "a.wav")
    soundtag("run", str(archive), "--labels", LABELS, "--model", str(tiny_clap), "--database", sqlite_url)
    (tmp_path / "birds.yaml").write_text("name: birds\nlabels: [owl, crow]\n")
    proc = soundtag("run", str(archive), "--taxonomy", str(tmp_path / "birds.yaml"), "--model", str(tiny_clap),
                    "--database", sqlite_url)
    assert "1 labeled" in proc.stderr
    assert query(sqlite_url, "select taxonomy, count(*) from file_labels group by taxonomy order by 1") == [("birds", 2), ("cli", 3)]


def test_default_database_is_sqlite_file_in_working_directory(tmp_path, tiny_clap):
    write(tmp_path / "clips" / "a.wav")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDTAG_")}
    soundtag("run", "clips", "--labels", LABELS, cwd=tmp_path, env={**env, "SOUNDTAG_MODEL": str(tiny_clap)})
    assert (tmp_path / "soundtag.db").exists()
    assert query(f"sqlite:///{tmp_path / 'soundtag.db'}", "select count(*) from file_labels where rank = 1")[0][0] == 1


def test_pattern_selects_files(tmp_path, tiny_clap, sqlite_url):
    write(tmp_path / "a.wav")
    write(tmp_path / "b.flac")
    soundtag("run", str(tmp_path), "--pattern", "*.flac", "--labels", LABELS, "--model", str(tiny_clap),
             "--database", sqlite_url)
    assert [r.uri.rsplit("/", 1)[1] for r in query(sqlite_url, "select uri from files")] == ["b.flac"]


@pytest.mark.parametrize("args, message", [
    (["--labels", "a,a"], "--labels: label 'a' appears twice"),
    ([], "give exactly one of --taxonomy FILE or --labels"),
    (["--labels", "a", "--model", "laion/no-such-clap"], "model laion/no-such-clap: not in the Hugging Face cache and HF_HUB_OFFLINE is set"),
    (["--labels", "a", "--database", "postgresql://nobody@127.0.0.1:1/none"], "postgresql+psycopg://nobody@127.0.0.1:1/none:"),
])
def test_user_errors_are_one_line_without_traceback(tmp_path, args, message):
    write(tmp_path / "a.wav")
    proc = soundtag("run", str(tmp_path), *args, check=False, cwd=tmp_path,
                    env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 1
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_path_is_reported(tmp_path, sqlite_url):
    proc = soundtag("run", str(tmp_path / "nowhere"), "--labels", "a", "--database", sqlite_url, check=False)
    assert proc.returncode == 1 and f"{tmp_path / 'nowhere'}: no such file or directory" in proc.stderr


def test_db_upgrade_creates_views(pg_url):
    soundtag("db", "upgrade", "--database", pg_url)
    names = {r[0] for r in query(pg_url, "select table_name from information_schema.views where table_schema = 'public'")}
    assert names == {"files", "file_labels", "segment_labels", "jobs"}


def test_cli_and_producer_start_without_torch():
    import subprocess
    import sys

    code = ("import sys, soundtag.cli, soundtag.fleet, producer.enqueue, producer.scan, producer.sources, "
            "producer.tasks, producer.beat, db.store; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_schema_head_constant_is_the_newest_migration():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from db.schema import HEAD, MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]
