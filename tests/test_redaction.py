"""No command prints a password or key: every command that shows a URL, and the error paths that
may echo one, run with secrets in their URLs and environment."""

from __future__ import annotations

import uuid

import pytest
import redis

from soundtag.redaction import masked
from tests.audio_files import write
from tests.conftest import TEST_REDIS, free_port, soundtag

SECRETS = ("pgS3cret", "redisS3cret", "awsS3cretKey", "AKIAS3CRETKEYID")
REDIS = TEST_REDIS


def _no_secret(proc, returncode: int = 0) -> None:
    output = proc.stdout + proc.stderr
    assert proc.returncode == returncode, output
    assert not [s for s in SECRETS if s in output], output


def test_no_command_prints_a_secret(tmp_path, tiny_clap, pg_url, workers):
    write(tmp_path / "clips" / "a.wav")
    clips = str(tmp_path / "clips")
    # The local PostgreSQL trusts its clients, so a password in the URL is accepted and ignored;
    # the local Redis, without a password, accepts one too.
    database = pg_url.replace("postgresql://postgres@", "postgresql://postgres:pgS3cret@")
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {"SOUNDTAG_DATABASE_URL": database, "SOUNDTAG_QUEUE": queue, "SOUNDTAG_MODEL": str(tiny_clap),
           "SOUNDTAG_BROKER_URL": REDIS.replace("redis://", "redis://:redisS3cret@"),
           "AWS_ACCESS_KEY_ID": "AKIAS3CRETKEYID", "AWS_SECRET_ACCESS_KEY": "awsS3cretKey",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}", "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "HF_HOME": str(tmp_path / "hf")}
    try:
        _no_secret(soundtag("db", "upgrade", env=env, check=False))
        _no_secret(soundtag("db", "upgrade", "--database", database, env=env, check=False))
        _no_secret(soundtag("run", clips, "--labels", "dog,rain", env=env, check=False))
        enqueued = soundtag("enqueue", clips, "--labels", "owl,crow", env=env, check=False)
        _no_secret(enqueued)
        _no_secret(soundtag("status", enqueued.stdout.strip(), env=env, check=False))
        _no_secret(soundtag("jobs", env=env, check=False))
        worker = workers(env)
        worker.stop()
        assert not [s for s in SECRETS if s in worker.log()]

        # What fails: an unreachable database, broker or S3 endpoint, each with its secret.
        unreachable_db = "postgresql://user:pgS3cret@127.0.0.1:1/x"
        for args in (("db", "upgrade", "--database", unreachable_db), ("status", "x", "--database", unreachable_db),
                     ("jobs", "--database", unreachable_db),
                     ("run", clips, "--labels", "a", "--database", unreachable_db)):
            _no_secret(soundtag(*args, env=env, check=False), returncode=1)
        down = {**env, "SOUNDTAG_BROKER_URL": f"redis://user:redisS3cret@127.0.0.1:{free_port()}/0"}
        _no_secret(soundtag("enqueue", clips, "--labels", "a", env=down, check=False), returncode=1)
        _no_secret(soundtag("scan", clips, "--labels", "a", env=down, check=False), returncode=1)
        _no_secret(soundtag("run", "s3://archive/x/", "--labels", "a", env=env, check=False), returncode=1)
    finally:
        redis.Redis.from_url(REDIS).delete(queue)


def test_a_password_in_the_query_is_never_printed(tmp_path, tiny_clap, pg_url):
    """libpq's ``?password=`` form, which SQLAlchemy's own masking leaves alone, in each place a
    database URL or a driver's message reaches the screen."""
    write(tmp_path / "clips" / "a.wav")
    database = pg_url + "?password=pgS3cret"
    _no_secret(soundtag("db", "upgrade", "--database", database, check=False))
    run = soundtag("run", str(tmp_path / "clips"), "--labels", "dog,rain", "--model", str(tiny_clap),
                   "--database", database, check=False)
    _no_secret(run)
    assert "1 labeled" in run.stderr and "password=***" in run.stderr
    unreachable = "postgresql://user@127.0.0.1:1/x?password=pgS3cret"
    for args in (("db", "upgrade"), ("jobs",), ("status", "x")):
        _no_secret(soundtag(*args, "--database", unreachable, check=False), returncode=1)


@pytest.mark.parametrize("text, shown", [
    ("postgresql+psycopg://user:pgS3cret@db:5432/soundtag", "postgresql+psycopg://user:***@db:5432/soundtag"),
    ("redis://:redisS3cret@redis:6379/0", "redis://:***@redis:6379/0"),
    ("error: amqp://guest:p@ss:w/rd@rabbit//: refused", "error: amqp://guest:***@rabbit//: refused"),
    ("postgresql://db/x?sslmode=require&password=pgS3cret", "postgresql://db/x?sslmode=require&password=***"),
    ("postgresql://u@db/x?password=pgS3cret&sslmode=require", "postgresql://u@db/x?password=***&sslmode=require"),
    ("rediss://default:redisS3cret@cache:6380/1", "rediss://default:***@cache:6380/1"),
    ("sqlite:///soundtag.db", "sqlite:///soundtag.db"),
    ("redis://redis:6379/0", "redis://redis:6379/0"),
])
def test_urls_are_shown_with_their_password_masked(text, shown):
    assert masked(text) == shown
