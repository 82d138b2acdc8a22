"""When and where a recording was made (soundtag.recording), read from real WAV files carrying
GUANO, bext and AudioMoth chunks as recorders lay them out, from FLAC and MP3 files carrying
Vorbis comments and ID3 tags, and from recorders' file names."""

import io
from datetime import datetime, timezone

import numpy as np
import pytest
import soundfile

from soundtag.errors import ConfigError
from soundtag.recording import Rules, read
from soundtag.sources.uris import file_uri
from tests.audio_files import audiomoth_comment, bext, guan, with_chunks, write

UTC = timezone.utc


def _read(path, rules=Rules(), roots=()):
    with open(path, "rb") as f:
        found = read(f, file_uri(str(path)), list(roots), rules)
        assert f.tell() == 0  # left where decoding starts
    return found


def test_guano_timestamp_with_offset_and_position(tmp_path):
    path = with_chunks(tmp_path / "bat.wav", [guan({"Make": "Pettersson", "Timestamp": "2024-05-01T22:15:17-05:00",
                                                    "Loc Position": "42.123456  -73.654321"})], after_data=True)
    found = _read(path)
    assert found.recorded_at == datetime(2024, 5, 2, 3, 15, 17, tzinfo=UTC)
    assert found.site == "42.123456 -73.654321"


def test_guano_timestamp_without_offset_is_read_in_the_given_zone(tmp_path):
    path = with_chunks(tmp_path / "bat.wav", [guan({"Timestamp": "2024-01-15T06:00:00"})])
    assert _read(path).recorded_at == datetime(2024, 1, 15, 6, 0, tzinfo=UTC)
    assert _read(path, Rules(timezone="Europe/Paris")).recorded_at == datetime(2024, 1, 15, 5, 0, tzinfo=UTC)


def test_bext_origination_in_the_given_zone(tmp_path):
    path = with_chunks(tmp_path / "take.wav", [bext("2023-07-14", "21:30:05")])
    # July in Paris is UTC+2.
    assert _read(path, Rules(timezone="Europe/Paris")).recorded_at == datetime(2023, 7, 14, 19, 30, 5, tzinfo=UTC)


@pytest.mark.parametrize("offset, expected", [
    ("UTC", datetime(2019, 5, 11, 19, 29, 20, tzinfo=UTC)),
    ("UTC+2", datetime(2019, 5, 11, 17, 29, 20, tzinfo=UTC)),
    ("UTC-5", datetime(2019, 5, 12, 0, 29, 20, tzinfo=UTC)),
    ("UTC+5:30", datetime(2019, 5, 11, 13, 59, 20, tzinfo=UTC)),
    ("UTC-0:30", datetime(2019, 5, 11, 19, 59, 20, tzinfo=UTC)),
])
def test_audiomoth_comment_local_time_and_offset(tmp_path, offset, expected):
    comment = (f"Recorded at 19:29:20 11/05/2019 ({offset}) by AudioMoth 24F3190361DA3578 at medium gain while "
               "battery was 4.4V and temperature was 15.8C.")
    path = with_chunks(tmp_path / "moth.wav", [audiomoth_comment(comment)])
    assert _read(path).recorded_at == expected


MOTH = "Recorded at 05:30:00 01/05/2024 (UTC+2) by AudioMoth 24F3190361DA3578 at medium gain"


def _tagged(path, fmt, **tags):
    """A second of noise in ``fmt`` (FLAC, MP3) written by libsndfile with ``tags`` (date,
    comment, title): Vorbis comments in FLAC, an ID3v2.3 tag (TYER, COMM) before MP3's frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with soundfile.SoundFile(path, "w", 16000, 1, format=fmt) as f:
        for key, value in tags.items():
            setattr(f, key, value)
        f.write(np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32))
    return path


def _syncsafe(n):
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def _id3v24(path, frames):
    """An MP3 whose ID3v2.4 tag holds ``frames`` (id, text): UTF-8 text frames, COMM with its
    language and empty description, sizes syncsafe as version 4 writes them."""
    stream = io.BytesIO()
    with soundfile.SoundFile(stream, "w", 16000, 1, format="MP3") as f:
        f.write(np.zeros(16000, dtype=np.float32))
    audio = stream.getvalue()
    body = b""
    for kind, text in frames:
        payload = b"\x03" + (b"eng\x00" if kind == b"COMM" else b"") + text.encode()
        body += kind + _syncsafe(len(payload)) + b"\x00\x00" + payload
    path.write_bytes(b"ID3\x04\x00\x00" + _syncsafe(len(body)) + body + audio)
    return path


def test_flac_date_without_zone_is_read_in_the_timezone(tmp_path):
    path = _tagged(tmp_path / "take.flac", "FLAC", date="2024-05-01T06:30:00", title="dawn")
    assert _read(path, Rules(timezone="Europe/Paris")).recorded_at == datetime(2024, 5, 1, 4, 30, tzinfo=UTC)


def test_flac_audiomoth_comment(tmp_path):
    path = _tagged(tmp_path / "moth.flac", "FLAC", comment=MOTH)
    assert _read(path).recorded_at == datetime(2024, 5, 1, 3, 30, tzinfo=UTC)


def test_mp3_id3v24_recording_time_and_comment(tmp_path):
    path = _id3v24(tmp_path / "a.mp3", [(b"TDRC", "2024-05-01T06:30:00"), (b"COMM", MOTH)])
    assert _read(path, Rules(timezone="America/New_York")).recorded_at == datetime(2024, 5, 1, 10, 30, tzinfo=UTC)
    # Without the date, the AudioMoth comment says when.
    assert _read(_id3v24(tmp_path / "b.mp3", [(b"COMM", MOTH)])).recorded_at == datetime(2024, 5, 1, 3, 30,
                                                                                       tzinfo=UTC)


def test_mp3_id3v23_comment_as_lame_writes_it(tmp_path):
    path = _tagged(tmp_path / "take.mp3", "MP3", comment=MOTH, title="dawn")
    assert _read(path).recorded_at == datetime(2024, 5, 1, 3, 30, tzinfo=UTC)


def test_tags_without_a_time_of_day_leave_the_name_to_say(tmp_path):
    # A year or a bare date is no recording time: the name's is taken, and without one, none.
    assert _read(_tagged(tmp_path / "20240501_053000.flac", "FLAC", date="2024")).recorded_at == datetime(
        2024, 5, 1, 5, 30, tzinfo=UTC)
    assert _read(_tagged(tmp_path / "song.flac", "FLAC", date="2024-05-01", comment="field notes")).recorded_at is None


def test_guano_wins_over_bext_and_comment_and_name(tmp_path):
    path = with_chunks(tmp_path / "20200101_000000.wav", [
        bext("2021-01-01", "00:00:00"), audiomoth_comment("Recorded at 00:00:00 01/01/2022 (UTC) by AudioMoth 1"),
        guan({"Timestamp": "2023-01-01T00:00:00Z"})])
    assert _read(path).recorded_at == datetime(2023, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("name, expected", [
    ("20240501_053000.WAV", datetime(2024, 5, 1, 5, 30, tzinfo=UTC)),  # AudioMoth
    ("SMM07257_20240501_053000.wav", datetime(2024, 5, 1, 5, 30, tzinfo=UTC)),  # Song Meter, with its prefix
    ("S4A12345_20231231T235959.wav", datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ("take 12.wav", None),
    ("120240501_053000.wav", None),  # nine digits: not a date
])
def test_recorder_file_names(tmp_path, name, expected):
    assert _read(write(tmp_path / name, seconds=0.5, rate=8000)).recorded_at == expected


def test_file_name_time_in_the_given_zone(tmp_path):
    path = write(tmp_path / "SMA00001_20240115_060000.wav", seconds=0.5, rate=8000)
    found = _read(path, Rules(timezone="America/New_York"))
    assert found.recorded_at == datetime(2024, 1, 15, 11, 0, tzinfo=UTC)


def test_time_pattern_for_other_names(tmp_path):
    path = write(tmp_path / "pond-2022.03.04 at 18h05.flac", seconds=0.5, rate=8000)
    assert _read(path).recorded_at is None
    found = _read(path, Rules(time_pattern="%Y.%m.%d at %Hh%M", timezone="Asia/Tokyo"))
    assert found.recorded_at == datetime(2022, 3, 4, 9, 5, tzinfo=UTC)


def test_a_file_that_says_nothing_stays_unknown(tmp_path):
    path = write(tmp_path / "notes" / "field recording.wav", seconds=0.5, rate=8000)
    found = _read(path, roots=[file_uri(str(tmp_path / "notes"))])
    assert found.recorded_at is None and found.site is None


def test_site_is_the_first_folder_below_the_root_else_guano_position_unless_a_pattern_says(tmp_path):
    root = tmp_path / "archive"
    path = with_chunks(root / "north ridge" / "2024" / "a.wav", [guan({"Loc Position": "1.5 2.5"})])
    roots = [file_uri(str(root))]
    assert _read(path, roots=roots).site == "north ridge"
    assert _read(path, roots=[file_uri(str(root / "north ridge" / "2024"))]).site == "1.5 2.5"
    assert _read(path, Rules(site_pattern=r"/(\d{4})/"), roots).site == "2024"


def test_bad_rules_are_one_line_errors():
    with pytest.raises(ConfigError, match="--timezone 'Mars/Olympus'"):
        Rules(timezone="Mars/Olympus")
    with pytest.raises(ConfigError, match="--site-pattern"):
        Rules(site_pattern="(")
    with pytest.raises(ConfigError, match="--time-pattern"):
        Rules(time_pattern="no directives")


def test_truncated_or_foreign_headers_say_nothing(tmp_path):
    (tmp_path / "cut.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEguan\xff\xff")
    assert _read(tmp_path / "cut.wav").recorded_at is None
    assert _read(write(tmp_path / "a.flac", seconds=0.5, rate=8000)).recorded_at is None


def test_labeling_fills_time_and_site_and_set_time_fixes_them(tmp_path, tiny_clap, database_url):
    from tests.conftest import query, soundtag

    archive = tmp_path / "archive"
    with_chunks(archive / "pond" / "moth.wav", [audiomoth_comment(
        "Recorded at 05:30:00 01/05/2024 (UTC+2) by AudioMoth 24F3190361DA3578 at medium gain while battery was 4.4V")])
    write(archive / "pond" / "SMM01234_20240501_060000.wav", seconds=1.0, rate=16000)
    with_chunks(archive / "bat.wav", [guan({"Timestamp": "2024-05-01T23:00:00Z", "Loc Position": "45.5 6.25"})])
    write(archive / "meadow" / "untitled.wav", seconds=1.0, rate=16000)
    soundtag("run", str(archive), "--labels", "rain,wind", "--model", str(tiny_clap), "--database", database_url,
             "--timezone", "Europe/Paris")

    def files():
        return {uri.rsplit("/", 1)[1]: (None if at is None else str(at)[:19], site)
                for uri, at, site in query(database_url, "select uri, recorded_at, site from files")}

    assert files() == {"moth.wav": ("2024-05-01 03:30:00", "pond"),
                       # a name holds no zone: Paris, UTC+2 in May
                       "SMM01234_20240501_060000.wav": ("2024-05-01 04:00:00", "pond"),
                       "bat.wav": ("2024-05-01 23:00:00", "45.5 6.25"),
                       "untitled.wav": (None, "meadow")}
    # Again without a zone (names read as UTC), sites from the recorder's serial where the name has one.
    proc = soundtag("recordings", "set-time", str(archive), "--database", database_url, "--site-pattern", r"SMM(\d+)_")
    assert "4 files: 3 with a time, 4 with a site" in proc.stdout
    assert files()["SMM01234_20240501_060000.wav"] == ("2024-05-01 06:00:00", "01234")
    assert files()["moth.wav"] == ("2024-05-01 03:30:00", "pond")
    assert query(database_url, "select count(*) from file_labels")[0][0] == 8  # nothing relabeled or lost
