"""Walking local folders as a hostile or careless archive has them: names that are not UTF-8 or
hold URI syntax, symlinks out of the folder, symlink loops, folders nobody may list."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

from soundtag.sources.uris import file_uri, path_of, readable, source_uri
from soundtag.sources.walk import WalkReport, walk, walk_sources
from tests.audio_files import write
from tests.conftest import ROOT, query

LABELS = "dog barking,rain,siren"
# Names the OS hands over that UTF-8 and URIs do not take as they are.
ODD_NAMES = [b"caf\xe9 latin-1.wav", b"100% #1 what?.wav", b"two\nlines.wav", b"  spaced  .flac"]


def _write_named(folder, name: bytes, **tone) -> bytes:
    """A real audio file under a name given as raw bytes; returns its full path as bytes."""
    plain = write(folder / ("plain." + name.rsplit(b".", 1)[1].decode()), **tone)
    target = os.path.join(os.fsencode(folder), name)
    os.rename(plain, target)
    return target


def _hostile_archive(tmp_path):
    """Good files (some oddly named) beside a link out, a link loop and a locked folder."""
    archive, outside = tmp_path / "archive", tmp_path / "outside"
    good = [os.fsencode(write(archive / "a.wav", seconds=1.0)), os.fsencode(write(archive / "sub" / "e.wav"))]
    good += [_write_named(archive, name, seconds=1.0, freq=300.0 + 50 * i) for i, name in enumerate(ODD_NAMES)]
    write(outside / "outside.wav")
    (archive / "leak.wav").symlink_to(outside / "outside.wav")  # a file link out
    (archive / "elsewhere").symlink_to(outside)  # a folder link out
    (archive / "sub" / "again").symlink_to("..")  # back to the root: a loop
    write(archive / "locked" / "hidden.wav")
    (archive / "locked").chmod(0)
    return archive, good


def _unprivileged() -> list[str]:
    """Root lists folders whatever their mode; without these two capabilities it obeys them."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a folder cannot be made unreadable")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def test_run_labels_exactly_the_good_files_of_a_hostile_folder(tmp_path, tiny_clap, database_url):
    archive, good = _hostile_archive(tmp_path)
    broken = os.path.join(os.fsencode(archive), b"bad\xfe.wav")  # corrupt, under a name that is not UTF-8
    with open(broken, "wb") as f:
        f.write(b"RIFF\x00\x00\x00\x00WAVEfmt nonsense")
    proc = subprocess.run([*_unprivileged(), sys.executable, "-m", "soundtag.cli", "run", str(archive), "--labels",
                           LABELS, "--model", str(tiny_clap), "--database", database_url],
                          cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True)

    assert proc.returncode == 0, proc.stderr
    assert "left out: 2 links outside the root, 1 loop, 1 unreadable folder" in proc.stderr
    assert "6 labeled, 1 failed" in proc.stderr
    assert f"failed {archive}/bad\\xfe.wav: corrupt audio file" in proc.stderr  # readable, on one line

    files = {row.uri: row for row in query(database_url, "select uri, status, content_hash from files")}
    assert set(files) == {file_uri(os.fsdecode(p)) for p in [*good, broken]}
    for path in good:  # each URI maps back to exactly its file, and the worker read that file
        row = files[file_uri(os.fsdecode(path))]
        assert os.fsencode(path_of(row.uri)) == path and row.status == "done"
        with open(path, "rb") as f:
            assert row.content_hash == hashlib.sha256(f.read()).hexdigest()
    assert all(uri.isascii() and "outside" not in uri and "hidden" not in uri for uri in files)


def test_walk_counts_what_it_leaves_out_and_never_leaves_the_root(tmp_path):
    archive, good = _hostile_archive(tmp_path)
    (archive / "locked").chmod(0o755)  # this process may be root: the folder is listed here
    (archive / "alias").symlink_to(archive / "sub")  # a folder inside: walked once, where it is
    (archive / "self.wav").symlink_to("self.wav")  # a link to itself
    (archive / "zero.wav").symlink_to("/dev/zero")

    report = WalkReport()
    uris = [ref.uri for ref in walk(str(archive), report=report)]
    assert sorted(uris) == sorted([file_uri(os.fsdecode(p)) for p in good] + [file_uri(str(archive / "locked" / "hidden.wav"))])
    assert (report.outside_links, report.loops, report.unreadable) == (3, 2, 0)
    assert str(report) == "3 links outside the root, 2 loops"
    assert str(WalkReport()) == ""


def test_unreadable_folder_is_counted_not_fatal(tmp_path, monkeypatch):
    write(tmp_path / "ok" / "a.wav")
    write(tmp_path / "locked" / "b.wav")
    scandir = os.scandir

    def refusing(path):
        if os.path.basename(path) == "locked":
            raise PermissionError(13, "Permission denied", path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    report = WalkReport()
    assert [ref.uri.rsplit("/", 2)[1:] for ref in walk(str(tmp_path), report=report)] == [["ok", "a.wav"]]
    assert str(report) == "1 unreadable folder"


def test_several_sources_are_walked_in_turn_into_one_report(tmp_path):
    first, second = write(tmp_path / "one" / "a.wav"), write(tmp_path / "two" / "b.wav")
    (tmp_path / "one" / "out").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "two" / "out").symlink_to(tmp_path / "elsewhere")
    report = WalkReport()
    refs = walk_sources([str(tmp_path / "one"), str(tmp_path / "two" / "b.wav"), str(tmp_path / "two")], report=report)
    assert [ref.uri for ref in refs] == [file_uri(str(first)), file_uri(str(second)), file_uri(str(second))]
    assert str(report) == "2 links outside the root"
    # As the job records them, and as stored URIs under them begin.
    assert source_uri(str(tmp_path / "one")) == file_uri(str(tmp_path / "one"))
    assert source_uri("s3://bucket/dir/") == "s3://bucket/dir/"


@pytest.mark.parametrize("name", [*ODD_NAMES, b"plain.wav", "caf\u00e9 utf-8.wav".encode()])
def test_file_uris_are_ascii_and_map_back_to_the_exact_name(name):
    path = os.fsdecode(b"/archive/" + name)
    uri = file_uri(path)
    assert uri.isascii() and "\n" not in uri and "#" not in uri and "?" not in uri
    assert path_of(uri) == path
    assert "\n" not in readable(uri) and readable(uri).isprintable()
    if name.isascii() and b"\n" not in name:
        assert readable(uri) == path
