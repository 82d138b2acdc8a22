"""`soundtag run` as a user calls it, on SQLite and on the real PostgreSQL, queried through the views."""

import os

import pytest

from tests.audio_files import tone, write
from tests.conftest import free_port, query, soundtag

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
    assert {row.model for row in top} == {str(tiny_clap)} and {row.taxonomy for row in top} == {_labels_name(LABELS)}

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
    assert query(sqlite_url, "select taxonomy, count(*) from file_labels group by taxonomy order by 1") == [
        ("birds", 2), (_labels_name(LABELS), 3)]
    soundtag("run", str(archive), "--labels", "owl,wind", "--name", "night", "--model", str(tiny_clap),
             "--database", sqlite_url)
    assert query(sqlite_url, "select taxonomy from file_labels group by taxonomy order by 1") == [
        ("birds",), (_labels_name(LABELS),), ("night",)]


def _labels_name(labels: str) -> str:
    """--labels taxonomies are named for their labels, so unrelated label sets never share a name."""
    from soundtag.taxonomy import taxonomy_from_csv

    name = taxonomy_from_csv(labels).name
    assert name.startswith("labels-") and len(name) == 15 and name != taxonomy_from_csv("owl,crow").name
    return name


def test_default_database_is_sqlite_file_in_working_directory(tmp_path, tiny_clap):
    write(tmp_path / "clips" / "a.wav")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDTAG_")}
    soundtag("run", "clips", "--labels", LABELS, cwd=tmp_path, env={**env, "SOUNDTAG_MODEL": str(tiny_clap)})
    # Whole when the command ends: its write-ahead log moved into the file, nothing left beside it.
    assert sorted(p.name for p in tmp_path.glob("soundtag.db*")) == ["soundtag.db"]
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
    (["--labels", "a,b", "--model", "laion/no-such-clap"],
     "model laion/no-such-clap: not in the Hugging Face cache and HF_HUB_OFFLINE is set; run `soundtag fetch-model"),
    (["--labels", "a,b", "--model", "./no/such/folder"], "model ./no/such/folder: no such folder"),
    (["--labels", "a,b", "--dtype", "fp8"], "--dtype (SOUNDTAG_DTYPE) 'fp8': Input should be 'fp32', 'fp16', 'bf16' or "
                                          "'int8'"),
    (["--labels", "a,b", "--device", "tpu"], "--device (SOUNDTAG_DEVICE) 'tpu': must be auto, cpu, cuda, cuda:N or mps"),
    (["--labels", "a,b", "--device", "cuda"], "--device cuda: no CUDA GPU is visible here"),
    (["--labels", "a,b", "--database", "mysql://root:s3cret@db/archive"],
     "--database (SOUNDTAG_DATABASE_URL): scheme 'mysql' is not supported; use sqlite:///PATH or postgresql://"),
    (["--labels", "a,b", "--database", "postgresql://nobody@127.0.0.1:1/none"], "postgresql+psycopg://nobody@127.0.0.1:1/none:"),
    (["--taxonomy", "{tmp}/two-slots.yaml"], "two-slots.yaml: template 'a {} and {}' must hold exactly one '{}'"),
    (["--taxonomy", "{tmp}/no-labels.yaml"], "no-labels.yaml: missing key 'labels'; unknown key 'lables' (did you mean "
                                             "'labels'?)"),
])
def test_user_errors_are_one_line_without_traceback_and_record_no_job(tmp_path, tiny_clap, args, message):
    write(tmp_path / "a.wav")
    (tmp_path / "two-slots.yaml").write_text('name: x\ntemplate: "a {} and {}"\nlabels: [dog]\n')
    (tmp_path / "no-labels.yaml").write_text("name: x\nlables: [dog]\n")
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    proc = soundtag("run", str(tmp_path), *args, check=False, cwd=tmp_path,
                    env={"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "SOUNDTAG_MODEL": str(tiny_clap)})
    assert proc.returncode == 1
    assert message in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "s3cret" not in proc.stderr
    if (tmp_path / "soundtag.db").exists():
        assert query(f"sqlite:///{tmp_path / 'soundtag.db'}", "select count(*) from jobs") == [(0,)]


def test_a_run_where_every_file_failed_exits_non_zero_naming_how_many(tmp_path, tiny_clap, sqlite_url):
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt nonsense")
    proc = soundtag("run", str(tmp_path), "--labels", LABELS, "--model", str(tiny_clap), "--database", sqlite_url,
                    check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert ": 1 file, 1 to label" in proc.stderr and "failed " in proc.stderr  # the reason, then the verdict
    assert proc.stderr.strip().splitlines()[-1] == "error: nothing labeled: 1 file failed, for the reasons above"
    assert query(sqlite_url, "select status from files") == [("failed",)]  # recorded all the same


def test_a_one_label_taxonomy_is_warned_of(tmp_path, tiny_clap, sqlite_url):
    write(tmp_path / "a.wav")
    proc = soundtag("run", str(tmp_path), "--labels", "rain", "--model", str(tiny_clap), "--database", sqlite_url)
    assert "warning: taxonomy labels-" in proc.stderr and "has one label, 'rain': it is the rank-1 label of every " \
        "file" in proc.stderr
    assert "warning" not in soundtag("run", str(tmp_path), "--labels", "rain,wind", "--model", str(tiny_clap),
                                     "--database", sqlite_url).stderr


@pytest.mark.parametrize("args", [["jobs"], ["status"], ["evaluate"], ["export", "--out", "x.csv", "--format", "csv"],
                                  ["review"], ["search", "rain"]], ids=lambda args: args[0])
def test_a_read_command_on_a_database_that_is_not_there_says_so_and_creates_none(tmp_path, args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOUNDTAG_")}
    proc = soundtag(*args, cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"error: no database at {tmp_path / 'soundtag.db'}; give the one `soundtag run` "
                                   "wrote with --database URL or SOUNDTAG_DATABASE_URL")
    assert list(tmp_path.iterdir()) == []


def test_default_model_without_network_fails_at_once_naming_the_ways_out(tmp_path):
    write(tmp_path / "a.wav")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOUNDTAG_", "HF_"))}
    # A hub endpoint that refuses connections: what a machine without network sees.
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="0", HF_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    proc = soundtag("run", str(tmp_path), "--labels", "a,b", check=False, cwd=tmp_path, env=env)
    assert proc.returncode == 1
    line = proc.stderr.strip()
    assert line.startswith("error: model laion/clap-htsat-unfused: not in the Hugging Face cache and the hub is "
                           "unreachable"), line
    assert "run `soundtag fetch-model laion/clap-htsat-unfused` where there is network, or pass --model DIR" in line
    assert len(line.splitlines()) == 1


def test_model_that_fails_to_load_fails_the_job_and_keeps_earlier_results(tmp_path, tiny_clap, sqlite_url):
    import shutil

    archive = tmp_path / "archive"
    write(archive / "a.wav")
    soundtag("run", str(archive), "--labels", LABELS, "--model", str(tiny_clap), "--database", sqlite_url)
    before = query(sqlite_url, "select uri, label, score from file_labels order by 1, 2")
    broken = tmp_path / "clap-without-weights"
    shutil.copytree(tiny_clap, broken)
    (broken / "model.safetensors").unlink()
    proc = soundtag("run", str(archive), "--labels", "owl,crow", "--model", str(broken), "--database", sqlite_url,
                    check=False)
    assert proc.returncode == 1 and f"error: model {broken}: cannot load" in proc.stderr
    job, state, error, queued = query(sqlite_url, "select job_id, state, error, queued from jobs where model = "
                                                  f"'{broken}'")[0]
    assert (state, queued) == ("failed", 1) and error.startswith(f"model {broken}: cannot load")
    status = soundtag("status", job, "--database", sqlite_url, check=False)
    assert status.returncode == 4 and f"({'run'}, failed)" in status.stdout
    assert query(sqlite_url, "select status from files") == [("done",)]
    assert query(sqlite_url, "select uri, label, score from file_labels order by 1, 2") == before


def test_rerun_with_nothing_pending_never_loads_the_model(tmp_path, tiny_clap, sqlite_url):
    import shutil

    archive = tmp_path / "archive"
    write(archive / "a.wav")
    (archive / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt nonsense")
    model = tmp_path / "clap"
    shutil.copytree(tiny_clap, model)
    args = ("run", str(archive), "--labels", LABELS, "--model", str(model), "--database", sqlite_url)
    assert "1 labeled, 1 failed, 0 skipped" in soundtag(*args).stderr
    (model / "model.safetensors").unlink()  # any attempt to load the model would now fail the run
    proc = soundtag(*args)
    assert "0 to label, 2 skipped" in proc.stderr and "0 labeled, 0 failed, 2 skipped" in proc.stderr
    retried = soundtag(*args, "--retry-failed", check=False)  # the failed file is retried: the model loads
    assert retried.returncode == 1 and "cannot load" in retried.stderr


def test_status_jobs_and_the_jobs_view_agree(tmp_path, tiny_clap, database_url):
    archive = tmp_path / "archive"
    write(archive / "a.wav")
    (archive / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt nonsense")
    soundtag("run", str(archive), "--labels", LABELS, "--model", str(tiny_clap), "--database", database_url)
    (job, state, total, done, failed, queued, finished), = query(
        database_url, "select job_id, state, total, done, failed, queued, finished_at is not null from jobs")
    assert (state, total, done, failed, queued, finished) == ("completed", 2, 1, 1, 0, True)
    status = soundtag("status", job, "--wait", "--database", database_url)
    assert f"job {job} (run, completed): 1 done, 1 failed, 0 queued of 2" in status.stdout
    assert soundtag("status", "--database", database_url).stdout == status.stdout  # the newest, as export takes
    listed = soundtag("jobs", "--database", database_url).stdout
    assert job in listed and "completed" in listed and "active" not in listed
    assert "job nope: not found" in soundtag("status", "nope", "--database", database_url, check=False).stderr


def test_a_normal_run_shows_no_third_party_output(tmp_path, tiny_clap, sqlite_url):
    import soundfile as sf

    archive = tmp_path / "archive"
    write(archive / "a.wav")
    clip = tmp_path / "plain.mp3"
    sf.write(clip, tone(3.0, 44100), 44100, format="MP3")
    # An ID3v2.4 tag whose frame claims more bytes than the tag holds: mpg123 complains on stderr.
    frames = b"TXXX\x00\x00\x00\x05\x00\x00\x03ab\x00c" + b"APIC\x7f\x7f\x7f\x7f\x00\x00" + bytes(10)
    size = bytes((len(frames) >> shift) & 0x7F for shift in (21, 14, 7, 0))
    (archive / "tagged.mp3").write_bytes(b"ID3\x04\x00\x00" + size + frames + clip.read_bytes())
    args = ("run", str(archive), "--labels", LABELS, "--model", str(tiny_clap), "--database", sqlite_url)
    proc = soundtag(*args)
    assert "2 labeled, 0 failed" in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    # "exporting": the first run of a session builds the ONNX export, and says so in one line.
    assert all(line.startswith(("run ", "labeling", "loading", "exporting", "done: ")) for line in lines), proc.stderr
    verbose = soundtag("--verbose", *args, "--force")
    assert "ID3v2" in verbose.stderr  # the decoder's complaint is there, only hidden


def test_unexpected_errors_print_one_line_and_how_to_see_the_traceback(monkeypatch, capsys):
    import sys

    import db.jobs
    from soundtag import cli

    def broken(*_args, **_kwargs):
        raise RuntimeError("disk on fire\nsecond line")

    monkeypatch.setattr(db.jobs, "jobs", broken)
    monkeypatch.setattr(sys, "argv", ["soundtag", "jobs", "--database", "sqlite://"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: RuntimeError: disk on fire", "(run with --debug for the traceback)"]


def test_missing_path_is_reported(tmp_path, sqlite_url):
    proc = soundtag("run", str(tmp_path / "nowhere"), "--labels", "a", "--database", sqlite_url, check=False)
    assert proc.returncode == 1 and f"{tmp_path / 'nowhere'}: no such file or directory" in proc.stderr


def test_db_upgrade_creates_views(pg_url):
    soundtag("db", "upgrade", "--database", pg_url)
    names = {r[0] for r in query(pg_url, "select table_name from information_schema.views where table_schema = 'public'")}
    assert names == {"files", "file_labels", "segment_labels", "jobs", "reviews", "reviewed_labels", "file_tags",
                     "file_decisions", "segment_tags", "events", "detections", "detections_by_hour", "estimates",
                     "consensus", "agreement"}


def test_cli_and_producer_start_without_torch():
    import subprocess
    import sys

    code = ("import sys, soundtag.cli, soundtag.fleet, producer.enqueue, producer.scan, soundtag.sources.walk, "
            "producer.tasks, producer.beat, db.jobs, db.files, db.results, db.reviews, db.embeddings, "
            "db.predictions, db.labeled_files; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_schema_head_constant_is_the_newest_migration():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from db.schema import HEAD, MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD]


@pytest.mark.parametrize("stop, state, error", [
    (RuntimeError("disk full"), "failed", "RuntimeError: disk full"),
    (KeyboardInterrupt(), "cancelled", "interrupted"),
])
def test_a_run_that_stops_early_records_why_and_keeps_what_it_finished(tmp_path, tiny_clap, sqlite_url, stop, state,
                                                                      error):
    from db.schema import engine_for, ensure_schema
    from soundtag.settings import Settings
    from soundtag.sources.walk import walk
    from soundtag.taxonomy import taxonomy_from_csv
    from worker.runner import run

    for name in ("a.wav", "b.wav", "c.wav"):
        write(tmp_path / "archive" / name, seconds=1.0)
    engine = engine_for(sqlite_url)
    ensure_schema(engine)
    seen = []

    def first_then_stop(result) -> None:
        seen.append(result.uri)
        if len(seen) == 2:
            raise stop

    with pytest.raises(type(stop)):
        run(engine, walk(str(tmp_path / "archive")), taxonomy_from_csv(LABELS),
            Settings(model=str(tiny_clap), database_url=sqlite_url, embeddings="off"), sources=["archive"],
            on_result=first_then_stop)
    engine_for.cache_clear()
    assert query(sqlite_url, "select state, error, done, queued from jobs") == [(state, error, 2, 0 if state == "cancelled" else 1)]
    assert query(sqlite_url, "select count(distinct uri) from file_labels") == [(2,)]


def test_a_random_model_made_offline_labels_an_archive(tmp_path, sqlite_url):
    """What the README offers for trying soundtag without the hub; flags show no value type in --help."""
    made = soundtag("fetch-model", "--random", str(tmp_path / "random-clap"))
    assert f"--model {tmp_path / 'random-clap'}" in made.stderr
    write(tmp_path / "archive" / "a.wav")
    soundtag("run", str(tmp_path / "archive"), "--labels", "rain,wind", "--model", str(tmp_path / "random-clap"),
             "--database", sqlite_url)
    assert query(sqlite_url, "select count(*) from file_labels")[0][0] == 2
    help_text = soundtag("run", "--help", env={"COLUMNS": "200"}).stdout
    assert "--force" in help_text and "<bool>" not in help_text


def test_a_batch_whose_lease_was_taken_over_stores_nothing_for_that_file_and_logs_the_drop(tmp_path, tiny_clap,
                                                                                         sqlite_url, caplog):
    """The task's labeling step, given the lease holder: a worker that stalled past its lease keeps
    the files nobody took over and drops the one another worker now labels."""
    from db import leases
    from db.files import add_files
    from db.jobs import create_job, job_spec
    from db.schema import engine_for, ensure_schema
    from soundtag.settings import Settings
    from soundtag.sources.walk import walk
    from soundtag.taxonomy import taxonomy_from_csv
    from worker.runner import process

    for name in ("a.wav", "b.wav"):
        write(tmp_path / "archive" / name, seconds=1.0)
    engine = engine_for(sqlite_url)
    ensure_schema(engine)
    settings = Settings(model=str(tiny_clap), database_url=sqlite_url, embeddings="off")
    job = create_job(engine, taxonomy_from_csv(LABELS), settings, kind="enqueue", sources=["archive"])
    uris = [uri for _, uri in add_files(engine, job, walk(str(tmp_path / "archive")))]
    spec = job_spec(engine, job)
    assert leases.claim(engine, job, uris, "stalled:1:a", lease_s=-1) == {uri: 0 for uri in uris}
    assert leases.claim(engine, job, uris[:1], "live:2:b", lease_s=60) == {uris[0]: 1}
    with caplog.at_level("WARNING", logger="worker.runner"):
        assert process(job, spec, uris, settings, holder="stalled:1:a") == 1
    assert f"job {job}: 1 results dropped" in caplog.text
    assert query(sqlite_url, "select uri from file_labels where rank = 1") == [(uris[1],)]
    assert process(job, spec, uris[:1], settings, holder="live:2:b") == 1
    engine_for.cache_clear()
    assert sorted(query(sqlite_url, "select uri from file_labels where rank = 1")) == sorted((uri,) for uri in uris)
    assert query(sqlite_url, "select done, queued from jobs") == [(2, 0)]
