"""`soundtag reviewers`: a team of named people, each with a token printed once and stored only as
a slow salted hash, found again by it until they are removed."""

from __future__ import annotations

from db.reviewers import signed_in, still_in
from tests.conftest import query, soundtag


def _add(url, name, *role) -> str:
    proc = soundtag("reviewers", "add", name, *role, "--database", url)
    return proc.stdout.strip()


def test_a_token_signs_in_its_person_until_they_are_removed(engine, database_url):
    ana, bob = _add(database_url, "ana"), _add(database_url, "bob", "--role", "admin")
    assert (signed_in(engine, ana).name, signed_in(engine, ana).role) == ("ana", "reviewer")
    assert (signed_in(engine, bob).name, signed_in(engine, bob).role) == ("bob", "admin")
    row_id, secret = ana.split(".")
    for guess in (ana + "x", f"{bob.split('.')[0]}.{secret}", secret, "", ".", "1e3.x", f"{row_id}."):
        assert signed_in(engine, guess) is None, guess
    listed = soundtag("reviewers", "list", "--database", database_url).stdout.splitlines()
    assert [line.split()[:2] for line in listed] == [["ana", "reviewer"], ["bob", "admin"]]
    soundtag("reviewers", "remove", "ana", "--database", database_url)
    assert signed_in(engine, ana) is None and still_in(engine, int(row_id)) is None
    assert still_in(engine, int(bob.split(".")[0])).name == "bob"
    again = _add(database_url, "ana", "--role", "viewer")  # a new token for a returning person
    assert again != ana and signed_in(engine, again).role == "viewer" and signed_in(engine, ana) is None


def test_tokens_are_nowhere_in_the_database_in_plain_text(sqlite_url, tmp_path):
    soundtag("db", "upgrade", "--database", sqlite_url)
    tokens = [_add(sqlite_url, name) for name in ("ana", "bob", "cy")]
    stored = (tmp_path / "soundtag.db").read_bytes()
    for token in tokens:
        assert token.encode() not in stored and token.split(".")[1].encode() not in stored
    hashes = [row.token_hash for row in query(sqlite_url, "select token_hash from reviewer")]
    assert len(set(hashes)) == 3 and all(h.startswith("scrypt$16384$8$1$") for h in hashes)


def test_a_name_taken_or_a_role_unknown_is_one_line(sqlite_url):
    soundtag("db", "upgrade", "--database", sqlite_url)
    _add(sqlite_url, "ana")
    taken = soundtag("reviewers", "add", "ana", "--database", sqlite_url, check=False)
    assert taken.returncode == 1
    assert taken.stderr == "error: reviewer ana: already added; remove them first to give a new token\n"
    role = soundtag("reviewers", "add", "eve", "--role", "boss", "--database", sqlite_url, check=False)
    assert role.stderr == "error: --role 'boss': use one of viewer, reviewer, admin\n"
    gone = soundtag("reviewers", "remove", "zed", "--database", sqlite_url, check=False)
    assert gone.stderr == "error: reviewer zed: not in the team (`soundtag reviewers list`)\n"
