"""Scheduled, incremental ingestion: `soundtag scan`, schedule files, Celery beat."""

import os
import subprocess
import sys
import time

import pytest
import redis

from producer.schedule import beat_schedule, load_schedule
from soundtag.errors import ScheduleError
from tests.audio_files import write
from tests.conftest import ROOT, query, soundtag, wait_for

LABELS = "rain,wind"


def _job_uris(url, job):
    return sorted(r.uri.rsplit("/", 1)[1] for r in query(
        url, f"select f.uri from job_file j join file f on f.id = j.file_id where j.job_id = '{job}'"))


def _scan(env, folder):
    out = soundtag("scan", str(folder), "--labels", LABELS, env=env).stdout.strip()
    return out, (out.rsplit("job ", 1)[1] if "enqueued as job" in out else None)


def test_second_scan_enqueues_exactly_the_added_and_changed_files(tmp_path, celery_env):
    url, folder = celery_env["SOUNDTAG_DATABASE_URL"], tmp_path / "archive"
    for name in ("a.wav", "b.wav", "c.wav"):
        write(folder / name)
    out, first = _scan(celery_env, folder)
    assert "3 listed, 3 new, 0 changed; enqueued as job" in out
    assert _job_uris(url, first) == ["a.wav", "b.wav", "c.wav"]

    out, none = _scan(celery_env, folder)  # still queued in the first job: nothing to add
    assert out.endswith("3 listed, 0 new, 0 changed; nothing to enqueue") and none is None

    write(folder / "d.wav")
    time.sleep(0.01)
    write(folder / "b.wav", seconds=3.0)
    out, second = _scan(celery_env, folder)
    assert "4 listed, 1 new, 1 changed; enqueued as job" in out
    assert _job_uris(url, second) == ["b.wav", "d.wav"]
    broker = redis.Redis.from_url(celery_env["SOUNDTAG_BROKER_URL"])
    assert broker.llen(celery_env["SOUNDTAG_QUEUE"]) == 2  # one batch per scan that found work
    broker.delete(celery_env["SOUNDTAG_QUEUE"])


def test_scan_of_labeled_unchanged_folder_enqueues_nothing(tmp_path, celery_env):
    folder = tmp_path / "archive"
    write(folder / "a.wav")
    soundtag("run", str(folder), "--labels", LABELS, env=celery_env)
    assert _scan(celery_env, folder)[0].endswith("1 listed, 0 new, 0 changed; nothing to enqueue")


def test_scan_reads_times_and_sites_by_its_rules(tmp_path, celery_env, workers):
    url, folder = celery_env["SOUNDTAG_DATABASE_URL"], tmp_path / "archive"
    write(folder / "pond" / "unit7 2024.05.01 at 06h30.wav")
    out = soundtag("scan", str(folder), "--labels", LABELS, "--time-pattern", "%Y.%m.%d at %Hh%M",
                   "--timezone", "Europe/Paris", "--site-pattern", r"(unit\d+) ", env=celery_env).stdout
    assert "1 new" in out
    workers(celery_env)
    wait_for(lambda: query(url, "select count(*) from labeling")[0][0] == 1, 120, "the scanned file to be labeled")
    (at, site), = query(url, "select recorded_at, site from files")
    # Paris is UTC+2 in May; the site is the pattern's group, not the folder.
    assert (str(at)[:19], site) == ("2024-05-01 04:30:00", "unit7")


def test_scan_refuses_a_bad_rule_in_one_line(tmp_path, celery_env):
    write(tmp_path / "a.wav")
    proc = soundtag("scan", str(tmp_path), "--labels", LABELS, "--timezone", "Mars/Olympus", env=celery_env,
                    check=False)
    assert proc.returncode != 0 and "--timezone 'Mars/Olympus'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_two_scans_of_the_same_source_never_run_at_once(tmp_path, celery_env):
    from producer.scan import _lock
    from soundtag.settings import Settings
    from soundtag.sources.uris import source_uri

    folder = tmp_path / "archive"
    write(folder / "a.wav")
    held = _lock(Settings(broker_url=celery_env["SOUNDTAG_BROKER_URL"], scan_lock_s=60), [source_uri(str(folder))])
    assert held.acquire()
    try:
        assert "another scan of these sources is running; skipped" in _scan(celery_env, folder)[0]
    finally:
        held.release()
    assert "1 new" in _scan(celery_env, folder)[0]


def _schedule(tmp_path, body):
    path = tmp_path / "schedule.yaml"
    path.write_text(body)
    return path


def test_schedule_file_becomes_beat_entries(tmp_path):
    (tmp_path / "tax.yaml").write_text("labels: [rain]\n")
    schedule = load_schedule(_schedule(tmp_path, """
scans:
  - {name: nightly, sources: [/data], taxonomy: tax.yaml, cron: "0 3 * * *"}
  - {name: often, sources: ["s3://bucket/new/"], labels: [rain, wind], every: 30m, model: /models/clap}
"""))
    entries = beat_schedule(schedule, "soundtag.scan", "scans")
    assert entries["scan:often"]["schedule"].total_seconds() == 1800
    assert entries["scan:nightly"]["schedule"].hour == {3} and entries["scan:nightly"]["args"] == ["nightly"]
    assert schedule.taxonomy(schedule.get("nightly")).names == ["rain"]


@pytest.mark.parametrize("body, message", [
    ("scans: [{name: a, sources: [/x], labels: [r], every: 1h, cron: '* * * * *'}]", "give exactly one of every or cron"),
    ("scans: [{name: a, sources: [/x], labels: [r], cron: 'sometimes'}]", "is not a valid 5-field cron"),
    ("scans: [{name: a, sources: [/x], labels: [r], every: soon}]", "is not like 90s, 30m, 6h or 1d"),
    ("scans: [{name: a, sources: [/x], taxonomy: missing.yaml, every: 1h}]", "missing.yaml: No such file"),
    ("scans: [{name: a, sources: [], labels: [r], every: 1h}]", "needs at least one source"),
])
def test_invalid_schedule_is_one_line(tmp_path, body, message):
    with pytest.raises(ScheduleError, match="schedule.yaml: .*" + message.replace("(", r"\(")):
        load_schedule(_schedule(tmp_path, body))


def test_beat_scans_on_schedule_and_workers_label_only_what_changed(tmp_path, celery_env, workers):
    url, folder = celery_env["SOUNDTAG_DATABASE_URL"], tmp_path / "archive"
    write(folder / "a.wav")
    write(folder / "b.wav")
    schedule = _schedule(tmp_path, f"scans:\n  - {{name: archive, sources: [{folder}], labels: [rain, wind], every: 2s}}\n")
    env = {**celery_env, "SOUNDTAG_SCHEDULE_FILE": str(schedule),
           "SOUNDTAG_SCAN_QUEUE": celery_env["SOUNDTAG_QUEUE"] + ".scan"}
    soundtag("db", "upgrade", env=env)
    workers(env)
    workers(env, "--queue", env["SOUNDTAG_SCAN_QUEUE"], "--pool", "threads", "--concurrency", "2")
    log = open(tmp_path / "beat.log", "wb")
    beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "soundtag.fleet", "beat", "--loglevel", "INFO", "--schedule",
                             str(tmp_path / "beat-state")], cwd=ROOT, env={**os.environ, **env},
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        scans = "select id from job where kind = 'scan' order by created_at"
        wait_for(lambda: query(url, "select count(*) from labeling")[0][0] == 2, 180, "the first scan's files to be labeled")
        time.sleep(5)  # two more beats: nothing changed, so no new job
        assert len(query(url, scans)) == 1
        write(folder / "c.wav")
        wait_for(lambda: len(query(url, scans)) == 2, 60, "a scan to find the new file")
        assert _job_uris(url, query(url, scans)[-1].id) == ["c.wav"]
        wait_for(lambda: query(url, "select count(*) from labeling")[0][0] == 3, 60, "the new file to be labeled")
    finally:
        beat.terminate()
        beat.wait(20)
        log.close()
