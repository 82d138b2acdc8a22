"""`soundtag review` as a reviewer uses it: a real server process, a real Chromium, real audio, and
the verdicts read back from the `reviews` and `reviewed_labels` views."""

from __future__ import annotations

import http.client
import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.audio_files import write
from tests.conftest import ROOT, free_port, query, soundtag, wait_for

LABELS = "dog barking,rain,siren"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def labeled(tmp_path, tiny_clap, sqlite_url):
    archive = tmp_path / "archive"
    for name, freq in [("a.wav", 440.0), ("b.wav", 880.0), ("c.wav", 220.0), ("d.wav", 660.0)]:
        write(archive / name, seconds=3.0, freq=freq)
    soundtag("run", str(archive), "--labels", LABELS, "--model", str(tiny_clap), "--database", sqlite_url)
    return sqlite_url


class Server:
    """A `soundtag review` subprocess on a free port, its output in a file."""

    def __init__(self, tmp_path, *args: str, env: dict | None = None):
        self.port = free_port()
        self.log_path = tmp_path / f"review-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "soundtag.cli", "review", "--port", str(self.port), *args], cwd=ROOT,
            env={**os.environ, **(env or {})}, stdout=self._log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self) -> None:
        wait_for(lambda: self.proc.poll() is not None or _status(self.url + "/static/review.css") == 200, 60,
                 "the review server to answer")
        assert self.proc.poll() is None, self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self._log.close()


def _status(url: str, headers: dict | None = None) -> int | None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


@pytest.fixture
def server(tmp_path):
    started: list[Server] = []

    def start(*args: str, env: dict | None = None) -> Server:
        started.append(Server(tmp_path, *args, env=env))
        return started[-1]

    yield start
    for one in started:
        one.stop()


@pytest.fixture
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium")
    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def _current(url: str) -> list[tuple]:
    return [tuple(row) for row in query(url, "select uri, verdict, label, reviewer from reviews where current = 1 "
                                             "order by reviewed_at, uri")]


def _shown(page) -> tuple[str, str]:
    """The file id and URI of the recording on screen, once it is ready."""
    page.wait_for_selector("body[data-state=ready]")
    return page.evaluate("document.body.dataset.file"), page.text_content("#name")


def test_reviewer_accepts_rejects_corrects_and_undoes_in_the_browser(labeled, server, browser):
    review = server("--database", labeled, "--reviewer", "alice")
    review.wait_ready()
    page = browser.new_page()
    page.goto(review.url + "/")
    file_id, first = _shown(page)
    assert page.locator("#waveform [part~=region]").count() == 1  # the item's own segment only
    assert page.locator("#spectrogram canvas").count() >= 1

    partial = page.request.get(f"{review.url}/audio/{file_id}", headers={"Range": "bytes=0-99"})
    assert partial.status == 206 and partial.headers["content-range"].startswith("bytes 0-99/")
    assert len(partial.body()) == 100

    decisions = dict(query(labeled, "select uri, label from file_labels where rank = 1"))
    _press(page, "a")
    page.wait_for_selector("#progress:has-text('1 reviewed')")
    assert _current(labeled) == [("file://" + first, "accept", decisions["file://" + first], "alice")]

    _, second = _shown(page)
    assert second != first
    _press(page, "x")
    page.wait_for_selector("#progress:has-text('2 reviewed')")
    assert _current(labeled)[1] == ("file://" + second, "reject", decisions["file://" + second], "alice")

    _, third = _shown(page)
    _press(page, "3")
    page.wait_for_selector("#progress:has-text('3 reviewed')")
    assert _current(labeled)[2] == ("file://" + third, "correct", "siren", "alice")

    _shown(page)
    _press(page, "u")
    page.wait_for_selector("#progress:has-text('2 reviewed')")
    assert [row[0] for row in _current(labeled)] == ["file://" + first, "file://" + second]
    history = query(labeled, "select verdict, undone_at is not null, current from reviews where uri = '%s'" % ("file://" + third))
    assert [tuple(row) for row in history] == [("correct", 1, 0)]
    assert _shown(page)[1] == third  # undo goes back to the recording

    final = {row.uri: (row.label, row.source) for row in query(labeled, "select uri, label, source from reviewed_labels")}
    assert final["file://" + first] == (decisions["file://" + first], "human")
    assert final["file://" + second] == (None, "human")
    assert final["file://" + third] == (decisions["file://" + third], "model")


def test_audio_only_for_ids_the_server_issued(labeled, server, browser):
    review = server("--database", labeled)
    review.wait_ready()
    page = browser.new_page()
    page.goto(review.url + "/")
    file_id, _ = _shown(page)
    assert page.request.get(f"{review.url}/audio/{file_id}").status == 200
    for tampered in [str(int(file_id) + 1000), f"{file_id}x", "-1", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd",
                     "file:%2F%2F%2Fetc%2Fpasswd"]:
        assert page.request.get(f"{review.url}/audio/{tampered}").status == 404, tampered
    assert page.request.get(f"{review.url}/audio?uri=file:///etc/passwd").status == 404
    assert page.request.get(f"{review.url}/api/items/0/audio").status == 200
    for tampered in ["4", "-1", "1x", "..%2F0", "%2Fetc%2Fpasswd"]:  # 4 items: 0 to 3
        assert page.request.get(f"{review.url}/api/items/{tampered}/audio").status == 404, tampered
    assert page.request.get(f"{review.url}/static/../../../etc/passwd").status == 404


def test_post_from_another_origin_is_refused(labeled, server, browser):
    review = server("--database", labeled)
    review.wait_ready()
    page = browser.new_page()
    page.goto(review.url + "/")
    _shown(page)
    body = {"item": int(page.evaluate("document.body.dataset.item")), "version": 0, "verdict": "accept"}
    csrf = page.evaluate("document.body.dataset.csrf")
    forged = [{"Origin": "http://evil.example", "X-Soundtag-CSRF": csrf},
              {"Sec-Fetch-Site": "cross-site", "X-Soundtag-CSRF": csrf},
              {"Origin": review.url},  # no CSRF header: what a cross-site form would send
              {"Origin": review.url, "X-Soundtag-CSRF": "guessed"}]
    for headers in forged:
        assert page.request.post(f"{review.url}/api/verdicts", data=body, headers=headers).status == 403, headers
    assert _current(labeled) == []
    # A foreign page's own form post, from a real browser.
    evil = browser.new_page()
    evil.set_content(f'<form method="post" action="{review.url}/api/undo"><button>go</button></form>')
    with evil.expect_response(f"{review.url}/api/undo") as answer:
        evil.click("button")
    assert answer.value.status == 403
    assert page.request.post(f"{review.url}/api/verdicts", data=body,
                             headers={"Origin": review.url, "X-Soundtag-CSRF": csrf}).status == 200
    assert len(_current(labeled)) == 1


def test_other_address_without_token_does_not_serve(labeled):
    try:
        proc = subprocess.run([sys.executable, "-m", "soundtag.cli", "review", "--database", labeled, "--host",
                               "0.0.0.0", "--port", str(free_port())], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("soundtag review --host 0.0.0.0 served without a token")
    assert proc.returncode != 0
    message = proc.stderr.strip()
    assert len(message.splitlines()) == 1 and "--token" in message, message


def test_token_is_required_then_kept_in_a_cookie(labeled, server, browser):
    review = server("--database", labeled, "--host", "0.0.0.0", env={"SOUNDTAG_REVIEW_TOKEN": "s3cret-token"})
    wait_for(lambda: review.proc.poll() is not None or _status(review.url + "/") == 401, 60, "the server to answer")
    assert "s3cret-token" not in review.log_path.read_text()
    assert _status(review.url + "/api/items") == 401
    assert _status(review.url + "/?token=wrong") == 401
    assert _status(review.url + "/api/items", {"X-Soundtag-Token": "s3cret-token"}) == 200
    page = browser.new_page()
    page.goto(review.url + "/?token=s3cret-token")
    assert "token" not in page.url
    _shown(page)


def _raw(url: str, method: str = "GET", path: str = "/", headers: dict | None = None, body=None,
         chunked: bool = False):
    """One request exactly as given (Host, path and body untouched), as an attacker sends it."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in {"Host": f"{host}:{port}", **(headers or {})}.items():
            conn.putheader(name, value)
        if chunked:
            conn.putheader("Transfer-Encoding", "chunked")
        elif body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders()
        try:
            if chunked:
                for piece in body:
                    conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                conn.send(b"0\r\n\r\n")
            elif body is not None:
                conn.send(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered before reading it all
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture
def disguised(tmp_path, tiny_clap, sqlite_url):
    """A labeled archive whose only recording is a real WAV named x.html."""
    archive = tmp_path / "archive"
    archive.mkdir()
    write(tmp_path / "x.wav", seconds=2.0).rename(archive / "x.html")
    soundtag("run", str(archive), "--pattern", "*", "--labels", LABELS, "--model", str(tiny_clap),
             "--database", sqlite_url)
    return sqlite_url


def test_a_recording_replaced_by_a_link_out_of_the_jobs_sources_is_refused(labeled, server, tmp_path):
    """Without allow-lists too: a labeled file swapped for a link to a recording elsewhere, or to
    /etc/passwd, serves nothing of the target, as a whole recording or as an item's segment."""
    secret = write(tmp_path / "private" / "secret.wav", seconds=3.0)
    for name, target in [("a.wav", secret), ("b.wav", "/etc/passwd")]:
        (tmp_path / "archive" / name).unlink()
        (tmp_path / "archive" / name).symlink_to(target)
    review = server("--database", labeled, env={"SOUNDTAG_ALLOWED_ROOTS": "", "SOUNDTAG_ALLOWED_BUCKETS": ""})
    review.wait_ready()
    items = {item["name"].rsplit("/", 1)[1]: item for item in json.loads(_raw(review.url, path="/api/items")[2])["items"]}
    for name in ("a.wav", "b.wav"):
        for path in (f"/audio/{items[name]['file']}", f"/api/items/{items[name]['id']}/audio"):
            status, _, body = _raw(review.url, path=path)
            assert status == 404 and body.decode() == (
                f"review: {tmp_path / 'archive' / name}: outside the job's sources"), (path, body)
    assert _raw(review.url, path=f"/audio/{items['c.wav']['file']}")[0] == 200
    assert _raw(review.url, path=f"/api/items/{items['c.wav']['id']}/audio")[0] == 200


def test_a_recording_named_html_is_served_as_inert_audio(disguised, server):
    review = server("--database", disguised)
    review.wait_ready()
    status, headers, body = _raw(review.url, path="/api/items")
    [item] = json.loads(body)["items"]
    assert item["name"].endswith("x.html")
    status, headers, body = _raw(review.url, path=f"/audio/{item['file']}")
    assert status == 200 and body.startswith(b"RIFF")
    assert headers["content-type"] == "audio/wav"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-security-policy"] == "sandbox"
    status, headers, _ = _raw(review.url, path="/")
    assert "script-src 'self'" in headers["content-security-policy"] and "unsafe-inline" not in \
        headers["content-security-policy"].split("script-src")[1].split(";")[0]


def test_hostile_requests_are_answered_without_harm(labeled, server):
    review = server("--database", labeled)
    review.wait_ready()
    # DNS rebinding: a foreign name for this address is refused, whatever it asks.
    assert _raw(review.url, headers={"Host": "evil.example"})[0] == 403
    assert _raw(review.url, headers={"Host": f"evil.example:{review.port}"}, path="/api/items")[0] == 403
    assert _raw(review.url, headers={"Host": "127.0.0.1"})[0] == 403  # not this port
    status, _, page = _raw(review.url)
    assert status == 200
    csrf = re.search(rb'data-csrf="([^"]+)"', page).group(1).decode()
    for path in ["/audio/%C2%B2", "/api/items/%C2%B2/windows", "/audio/" + "1" * 5000, "/audio/%D9%A1"]:
        assert _raw(review.url, path=path)[0] == 404, path
    # A body far over the limit, declared or streamed, is refused without being held.
    big = b"x" * (10 * 1024 * 1024)
    headers = {"Content-Type": "application/json", "Origin": review.url, "X-Soundtag-CSRF": csrf}
    assert _raw(review.url, "POST", "/api/verdicts", headers, body=big)[0] == 413
    assert _raw(review.url, "POST", "/api/verdicts", headers, body=[b"x" * 65536] * 4, chunked=True)[0] == 413
    assert _current(labeled) == []


def test_the_token_stays_out_of_the_cookie_and_redirects_stay_on_site(labeled, server):
    review = server("--database", labeled, "--host", "0.0.0.0", env={"SOUNDTAG_REVIEW_TOKEN": "s3cret-token"})
    wait_for(lambda: review.proc.poll() is not None or _status(review.url + "/") == 401, 60, "the server to answer")
    for path in ["//evil.example/x?token=s3cret-token", "/\\evil.example/x?token=s3cret-token",
                 "/%2F%2Fevil.example/x?token=s3cret-token"]:
        status, headers, _ = _raw(review.url, path=path)
        assert status == 303, path
        location = headers["location"]
        assert location.startswith("/") and not location.startswith(("//", "/\\")), location
        assert "evil.example" not in urllib.parse.urlsplit(location).netloc
    status, headers, _ = _raw(review.url, path="/?token=s3cret-token")
    cookie = headers["set-cookie"]
    assert "s3cret-token" not in cookie and "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    session = cookie.split(";")[0]
    assert _raw(review.url, path="/api/items", headers={"Cookie": session})[0] == 200
    name = session.split("=")[0]
    assert name == f"soundtag_review_{review.url.rsplit(':', 1)[1]}"  # the port's own
    assert _raw(review.url, path="/api/items", headers={"Cookie": f"{name}=s3cret-token"})[0] == 401
    assert _raw(review.url, path="/api/items", headers={"Cookie": f"{name}=guessed"})[0] == 401


def test_one_browser_keeps_a_session_on_each_port_of_a_host():
    """Browsers send a host's cookies to every port: each review server names its cookie for its
    port, so signing in to one (an adjudication on another port) does not sign out of the other."""
    from starlette.requests import Request

    from review.guard import Guard

    def request(port: int, path: str, query: str = "", cookies: str = "") -> Request:
        headers = [(b"host", f"127.0.0.1:{port}".encode())] + ([(b"cookie", cookies.encode())] if cookies else [])
        return Request({"type": "http", "method": "GET", "path": path, "query_string": query.encode(),
                        "headers": headers})

    team_page, adjudication = Guard("127.0.0.1", 8765, "t"), Guard("127.0.0.1", 8766, "t")
    first = team_page.check(request(8765, "/", "token=t")).headers["set-cookie"].split(";")[0]
    second = adjudication.check(request(8766, "/", "token=t")).headers["set-cookie"].split(";")[0]
    jar = f"{first}; {second}"  # what the browser sends to either port
    assert team_page.check(request(8765, "/api/items", cookies=jar)) is None
    assert adjudication.check(request(8766, "/api/items", cookies=jar)) is None


def test_a_default_port_accepts_the_host_without_it():
    from starlette.requests import Request

    from review.guard import Guard

    def status(port: int, host: str):
        request = Request({"type": "http", "method": "GET", "path": "/", "query_string": b"",
                           "headers": [(b"host", host.encode())]})
        refused = Guard("127.0.0.1", port, None).check(request)
        return refused.status_code if refused else 200

    # Browsers leave :80 (and :443) out of Host.
    assert status(80, "127.0.0.1") == status(443, "localhost") == status(8080, "127.0.0.1:8080") == 200
    assert status(8080, "127.0.0.1") == status(80, "evil.example") == 403


# Review by segment, on a 30-minute recording (8 kHz, so that labeling it stays quick) and a
# 12-second 96 kHz one: labeled once for the module, each test on its own copy of the database.
LONG_S, LONG_RATE, HOP_S = 1800, 8000, 60


@pytest.fixture(scope="module")
def long_labeled(tmp_path_factory, tiny_clap):
    folder = tmp_path_factory.mktemp("long")
    write(folder / "archive" / "long.wav", seconds=LONG_S, rate=LONG_RATE, freq=300.0)
    write(folder / "archive" / "bat.wav", seconds=12.0, rate=96000, freq=30000.0)
    url = f"sqlite:///{folder / 'soundtag.db'}"
    soundtag("run", str(folder / "archive"), "--labels", LABELS, "--model", str(tiny_clap), "--database", url,
             "--hop", str(HOP_S))
    return folder / "soundtag.db"


@pytest.fixture
def long_db(long_labeled, tmp_path):
    import shutil

    shutil.copy(long_labeled, tmp_path / "soundtag.db")
    return f"sqlite:///{tmp_path / 'soundtag.db'}"


def _open(browser, url: str):
    """A page on the review, with the console errors it logs (favicon included) collected."""
    page = browser.new_page()
    errors: list[str] = []
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/")
    page.wait_for_selector("body[data-state=ready]")
    return page, errors


def _press(page, key: str) -> None:
    """Press ``key`` once the page takes keys: a verdict holds them for a moment (review.js drops
    the second press of a double press), as a person's next press comes later anyway."""
    page.wait_for_selector("body:not([data-busy])")
    page.keyboard.press(key)


def _items(page, url: str) -> list[dict]:
    """Every item of the review, in the order shown: one page as long as the whole listing."""
    return page.request.get(url + "/api/items?limit=100000").json()["items"]


def _item_of(url: str) -> int:
    return int(url.split("/api/items/")[1].split("/")[0])


def _go_to(page, items: list[dict], name: str) -> dict:
    """Press n (or p) until the nearest item of the recording ``name`` is on screen."""
    here = int(page.evaluate("document.body.dataset.item"))
    target = min((i for i, item in enumerate(items) if item["name"].endswith(name)), key=lambda i: abs(i - here))
    for _ in range(abs(target - here)):
        _press(page, "n" if target > here else "p")
        page.wait_for_selector("body[data-state=ready]:not([data-busy])")
    assert int(page.evaluate("document.body.dataset.item")) == target
    return items[target]


def test_a_window_of_a_30_minute_recording_loads_only_its_segment(long_db, server, browser):
    review = server("--database", long_db)  # the default unit: windows, since a recording has many
    review.wait_ready()
    sizes: dict[str, int] = {}
    page = browser.new_page()
    page.on("response", lambda r: "/audio" in r.url and sizes.setdefault(r.url, int(r.headers["content-length"])))
    page.goto(review.url + "/")
    page.wait_for_selector("body[data-state=ready]")
    items = _items(page, review.url)
    windows = query(long_db, "select uri, start_s, end_s from segment_labels where rank = 1")
    assert len(items) == len(windows) > LONG_S // HOP_S and all(item["start"] is not None for item in items)
    _go_to(page, items, "long.wav")
    long_ones = lambda: [url for url in sizes if items[_item_of(url)]["name"].endswith("long.wav")]  # noqa: E731
    wait_for(lambda: len(long_ones()) >= 2, 30, "the next item to be prefetched")
    assert all("/api/items/" in url for url in sizes)  # never the recording itself
    for url, size in sizes.items():
        item = items[_item_of(url)]
        seconds = item["end"] - item["clip_start"] + 1.0  # the window and its context (1 s each side)
        rate = 96000 if item["name"].endswith("bat.wav") else LONG_RATE
        assert size <= seconds * rate * 2 + 44, (url, size)  # 16-bit mono: the segment's own size
    assert sum(sizes[url] for url in long_ones()) < (LONG_S * LONG_RATE * 2) / 50
    assert page.locator("#waveform [part~=region]").count() == 1
    assert page.text_content("#position").startswith(f"window {_item_of(long_ones()[0]) + 1} of {len(items)}: ")


# Kept by the page as the spectrogram draws its frequency axis (on a canvas: no text to read).
AXIS_LABELS = """
window.__axis = [];
const fillText = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, ...rest) {
  if (this.canvas.getAttribute("part") === "spec-labels") window.__axis.push({canvas: this.canvas, text: String(text)});
  return fillText.call(this, text, ...rest);
};
"""


def _spectrogram(page) -> tuple[bytes, float]:
    """The spectrogram of the item on screen once drawn (a screenshot, taken until two agree) and
    the highest frequency its axis labels (Hz), as drawn on the axis now on screen."""
    page.wait_for_selector(f"body[data-spectrogram='{page.evaluate('document.body.dataset.item')}']")
    shots = [page.locator("#spectrogram").screenshot()]
    wait_for(lambda: shots.append(page.locator("#spectrogram").screenshot()) or shots[-1] == shots[-2], 30,
             "the spectrogram to be drawn")
    drawn = page.evaluate("""() => {
        const axis = document.querySelector("#spectrogram [part~=spec-labels]");
        return window.__axis.filter((label) => label.canvas === axis).map((label) => label.text);
    }""")
    hertz = [float(value) * (1000 if unit == "kHz" else 1) for value, unit in zip(drawn[1::2], drawn[::2])]
    return shots[-1], max(hertz)


def test_the_spectrogram_is_redrawn_for_each_item_up_to_its_own_nyquist(long_db, server, browser):
    review = server("--database", long_db, "--unit", "window")
    review.wait_ready()
    page = browser.new_page()
    page.add_init_script(AXIS_LABELS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(review.url + "/")
    page.wait_for_selector("body[data-state=ready]")
    items = _items(page, review.url)
    _go_to(page, items, "bat.wav")  # a 30 kHz tone at 96 kHz
    assert page.evaluate("document.body.dataset.rate") == "96000"
    assert page.text_content("#frequency-range") == "0–48.0 kHz"
    bat, bat_top = _spectrogram(page)
    _go_to(page, items, "long.wav")  # a 300 Hz tone at 8 kHz
    assert page.evaluate("document.body.dataset.rate") == str(LONG_RATE)
    assert page.text_content("#frequency-range") == "0–4.0 kHz"
    long, long_top = _spectrogram(page)
    assert bat != long
    # The axis's labels sit at fixed fractions of its height; the highest, 3/3.90625 of the Nyquist.
    assert bat_top == pytest.approx(48000 * 0.768, rel=0.01) and long_top == pytest.approx(4000 * 0.768, rel=0.01)
    _go_to(page, items, "bat.wav")
    assert _spectrogram(page) == (bat, bat_top)  # the same item draws the same again
    assert errors == []


def test_zoom_narrows_and_widens_the_visible_span(long_db, server, browser):
    review = server("--database", long_db)
    review.wait_ready()
    page, errors = _open(browser, review.url)
    span = lambda: float(page.evaluate("document.body.dataset.span"))  # noqa: E731
    whole = span()
    item = _items(page, review.url)[int(page.evaluate("document.body.dataset.item"))]
    clip = min(item["end"] + 1.0, item["duration"]) - item["clip_start"]  # the window, 1 s of context each side
    assert whole == pytest.approx(clip, abs=0.05)
    page.keyboard.press("+")
    page.keyboard.press("+")
    assert span() == pytest.approx(whole / 2.25, rel=0.01)
    page.keyboard.press("-")
    assert span() == pytest.approx(whole / 1.5, rel=0.01)
    page.mouse.move(200, 300)
    page.hover("#spectrogram")
    page.mouse.wheel(0, 100)  # down: out
    assert span() == pytest.approx(whole, rel=0.01)
    page.mouse.wheel(0, -100)
    assert span() == pytest.approx(whole / 1.5, rel=0.01)
    assert errors == []


def _drawn(shot: bytes) -> float:
    """The share of a screenshot's pixels that differ from its most common colour."""
    import io

    from PIL import Image

    colours = Image.open(io.BytesIO(shot)).convert("RGB").getcolors(1 << 24)
    return 1 - max(colours)[0] / sum(count for count, _ in colours)


def test_when_every_item_is_reviewed_the_page_says_so_and_undo_goes_back(labeled, server, browser):
    review = server("--database", labeled)
    review.wait_ready()
    page = browser.new_page()
    page.goto(review.url + "/")
    for _ in range(4):
        page.wait_for_selector("body[data-state=ready]:not([data-busy])")
        _press(page, "a")
    page.wait_for_selector("#done", state="visible")
    assert page.locator("#done").inner_text().startswith("all 4 recordings reviewed")
    # The last verdict is saved while "done" is drawn; its answer brings the count.
    page.wait_for_function("document.querySelector('#progress').textContent === '4 reviewed / 0 remaining'")
    assert not page.locator("#player").is_visible() and not page.locator("#name").is_visible()
    assert _drawn(page.locator("#done").screenshot()) > 0.02  # its text is on screen
    _press(page, "u")
    page.wait_for_selector("body[data-state=ready]:not([data-busy])")
    assert not page.locator("#done").is_visible() and page.locator("#player").is_visible()
    assert page.text_content("#progress") == "3 reviewed / 1 remaining"


def test_the_keys_overlay_lists_each_key_in_a_box_its_size(labeled, server, browser):
    review = server("--database", labeled)
    review.wait_ready()
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(review.url + "/")
    _shown(page)
    page.keyboard.press("?")
    overlay = page.locator("#help")
    assert overlay.is_visible()
    keys = [text.strip() for text in overlay.locator("dt").all_inner_texts()]
    assert keys == ["space", "a", "x", "1", "2", "3", "n / p", "u", "+ / -", "?"]
    assert overlay.locator("dd").nth(5).inner_text() == "the right label is siren"  # key 3: the third label
    box, listed = overlay.bounding_box(), overlay.locator("dl").bounding_box()
    for n in range(len(keys)):  # each key's line is where it can be read: inside the box, on top
        line = overlay.locator("dd").nth(n).bounding_box()
        x, y = line["x"] + 2, line["y"] + line["height"] / 2
        assert box["y"] <= y <= box["y"] + box["height"] <= 800
        assert page.evaluate(f"document.elementFromPoint({x}, {y}).closest('#help') !== null")
    assert listed["height"] * listed["width"] > 0.5 * box["height"] * box["width"]  # not a mostly empty box
    assert _drawn(overlay.screenshot()) > 0.02
    page.keyboard.press("Escape")
    assert not overlay.is_visible()


def test_a_double_press_records_one_verdict_and_moves_one_item(long_db, server, browser):
    review = server("--database", long_db, "--reviewer", "ana")
    review.wait_ready()
    page, errors = _open(browser, review.url)
    items = _items(page, review.url)
    assert page.evaluate("document.body.dataset.item") == "0"
    # Two presses 80 ms apart, in the page itself (Playwright's own presses are as far apart as its
    # round trips): a person's double press. With the next item's audio fetched ahead, a verdict
    # and the next item take 20-50 ms, so the second press comes after them.
    page.wait_for_selector("body[data-prefetched]:not([data-busy])")
    page.evaluate("""() => {
        const press = () => document.dispatchEvent(new KeyboardEvent("keydown", {key: "a"}));
        press();
        setTimeout(press, 80);
    }""")
    page.wait_for_timeout(200)
    page.wait_for_selector("#progress:has-text('1 reviewed')")
    page.wait_for_selector("body[data-state=ready]:not([data-busy])")
    assert page.evaluate("document.body.dataset.item") == "1"  # the next item, not the one after
    rows = query(long_db, "select uri, verdict, label, start_s, end_s from reviews")
    first = items[0]
    assert [tuple(row) for row in rows] == [
        ("file://" + first["name"], "accept", first["decision"], first["start"], first["end"])]
    assert errors == []


def test_a_second_verdict_for_the_same_version_of_an_item_is_refused(long_db, server, browser):
    review = server("--database", long_db)
    review.wait_ready()
    page, _ = _open(browser, review.url)
    csrf = page.evaluate("document.body.dataset.csrf")
    post = lambda body: page.request.post(review.url + "/api/verdicts", data=body,  # noqa: E731
                                          headers={"Origin": review.url, "X-Soundtag-CSRF": csrf})
    assert post({"item": 3, "version": 0, "verdict": "reject"}).status == 200
    second = post({"item": 3, "version": 0, "verdict": "accept"})
    assert second.status == 409 and second.json()["version"] == 1
    assert [row.verdict for row in query(long_db, "select verdict from reviews")] == ["reject"]
    assert post({"item": 3, "version": 1, "verdict": "accept"}).status == 200  # a verdict on what it saw


def test_segment_verdicts_land_in_reviews_with_bounds_and_in_reviewed_labels(long_db, server, browser):
    review = server("--database", long_db, "--reviewer", "ana")
    review.wait_ready()
    page, errors = _open(browser, review.url)
    items = _items(page, review.url)
    _press(page, "x")
    page.wait_for_selector("#progress:has-text('1 reviewed')")
    page.wait_for_selector("body[data-state=ready]:not([data-busy])")
    _press(page, "3")
    page.wait_for_selector("#progress:has-text('2 reviewed')")
    rows = query(long_db, "select verdict, label, start_s, end_s, current from reviews order by reviewed_at")
    assert [tuple(row) for row in rows] == [("reject", items[0]["decision"], items[0]["start"], items[0]["end"], 1),
                                            ("correct", "siren", items[1]["start"], items[1]["end"], 1)]
    final = query(long_db, "select uri, start_s, end_s, label, source from reviewed_labels order by start_s")
    segments = [tuple(row[1:]) for row in final if row.start_s is not None]
    assert sorted(segments) == sorted([(items[0]["start"], items[0]["end"], None, "human"),
                                       (items[1]["start"], items[1]["end"], "siren", "human")])
    assert {row.source for row in final if row.start_s is None} == {"model"}  # the files keep their decision
    # The correction keeps the decision the window showed (not the file's), for training.
    assert query(long_db, "select shown from review where verdict = 'correct'") == [(items[1]["decision"],)]
    _press(page, "u")
    page.wait_for_selector("#progress:has-text('1 reviewed')")
    page.wait_for_selector("body[data-state=ready]:not([data-busy])")
    assert page.evaluate("document.body.dataset.item") == "1"  # undo goes back to the segment
    assert errors == []


def test_a_verdict_counts_on_the_page_of_every_job_over_the_recording_that_has_its_label(long_db, server, browser,
                                                                                         tiny_clap):
    first = server("--database", long_db, "--reviewer", "ana")
    first.wait_ready()
    page, _ = _open(browser, first.url)
    items = _items(page, first.url)
    _press(page, "3")  # correct to siren
    page.wait_for_selector("#progress:has-text('1 reviewed')")
    first.stop()
    soundtag("relabel", "--labels", "siren,wind", "--model", str(tiny_clap), "--database", long_db)
    [(job,)] = query(long_db, "select job_id from jobs where kind = 'relabel'")
    second = server("--database", long_db, "--job", job, "--reviewer", "bo")
    second.wait_ready()
    listed = page.request.get(second.url + "/api/items").json()
    assert listed["progress"]["reviewed"] == 1
    [given] = [item for item in listed["items"] if item["given"]]
    assert ((given["name"], given["start"], given["end"], given["given"])
            == (items[0]["name"], items[0]["start"], items[0]["end"], {"verdict": "correct", "label": "siren"}))


def test_events_and_label_queues_page_through_their_segments(long_db, server, browser):
    events = query(long_db, "select uri, label, start_s, end_s from events")
    label = events[0].label
    review = server("--database", long_db, "--unit", "event", "--label", label)
    review.wait_ready()
    page, errors = _open(browser, review.url)
    items = _items(page, review.url)
    assert sorted((item["start"], item["end"]) for item in items) == sorted(
        (ev.start_s, ev.end_s) for ev in events if ev.label == label)
    assert {item["decision"] for item in items} == {label}
    per_label = page.request.get(review.url + "/api/items").json()["progress"]["per_label"]
    assert per_label[label] == {"reviewed": 0, "total": len(items)}
    windows = query(long_db, f"select count(*) as n from segment_tags where label = '{label}'")[0].n
    review_windows = server("--database", long_db, "--unit", "window", "--label", label)
    review_windows.wait_ready()
    assert len(_items(page, review_windows.url)) == windows
    assert errors == []


MANY_WINDOWS = 56  # more than the page asks for at a time (review.listing.PAGE)


@pytest.fixture
def many_windows(tmp_path):
    """A job over one 560 s recording whose 56 windows' results are stored as a worker stores
    them (the model's scores do not matter here, and running it on 56 windows takes minutes)."""
    import numpy as np

    from db.files import add_files
    from db.jobs import create_job
    from db.results import save_results
    from db.schema import engine_for, ensure_schema
    from model.results import FileResult, WindowResult
    from soundtag.fileref import FileRef
    from soundtag.settings import Settings
    from soundtag.taxonomy import taxonomy_from_csv

    path = tmp_path / "archive" / "many.wav"
    write(path, seconds=MANY_WINDOWS * 10.0, rate=8000, freq=300.0)
    url = f"sqlite:///{tmp_path / 'many.db'}"
    engine = engine_for(url)
    ensure_schema(engine)
    labels = LABELS.split(",")
    job = create_job(engine, taxonomy_from_csv(LABELS), Settings(model="stored"), kind="run",
                     sources=[str(path.parent)])
    rng = np.random.default_rng(0)
    windows = []
    for n in range(MANY_WINDOWS):
        cosines = rng.uniform(0.0, 0.4, len(labels))
        scores = np.exp(10 * (cosines - cosines.max()))
        windows.append(WindowResult(n * 10.0, n * 10.0 + 10.0, scores / scores.sum(), cosines))
    mean = np.mean([w.similarity for w in windows], axis=0)
    scores = np.exp(10 * (mean - mean.max()))
    add_files(engine, job, [FileRef(path.as_uri(), fingerprint="many")])
    save_results(engine, job, [FileResult(path.as_uri(), duration_s=MANY_WINDOWS * 10.0, sample_rate=8000,
                                          channels=1, scores=scores / scores.sum(), similarity=mean,
                                          segments=windows)], labels, logit_scale=10.0)
    engine.dispose()
    engine_for.cache_clear()
    return url


def test_the_list_comes_a_page_at_a_time_and_the_reviewer_walks_past_the_first(many_windows, server, browser):
    from review.listing import PAGE

    review = server("--database", many_windows, "--unit", "window")
    review.wait_ready()
    every = json.loads(_raw(review.url, path="/api/items?limit=1000")[2])["items"]
    first_page = {item["id"] for item in every[:PAGE]}
    page, errors = _open(browser, review.url)
    asked: list[str] = []  # the page's own requests for the list
    page.on("request", lambda r: "/api/items?" in r.url and asked.append(r.url))
    for _ in range(PAGE + 1):  # n: on past the first page's last item
        page.wait_for_selector("body[data-state=ready]:not([data-busy])")
        _press(page, "n")
    page.wait_for_selector("body[data-state=ready]:not([data-busy])")
    walked = every[PAGE + 1]
    assert walked["id"] not in first_page and int(page.evaluate("document.body.dataset.item")) == walked["id"]
    assert page.text_content("#position").startswith(f"window {PAGE + 2} of {MANY_WINDOWS}: ")
    page.reload()
    for _ in range(PAGE + 2):  # a verdict on each: past the first page's last item
        page.wait_for_selector("body[data-state=ready]:not([data-busy])")
        _press(page, "a")
    page.wait_for_selector(f"#progress:has-text('{PAGE + 2} reviewed / ')")
    page.wait_for_selector("body[data-state=ready]:not([data-busy])")
    beyond = every[PAGE + 2]
    assert int(page.evaluate("document.body.dataset.item")) == beyond["id"]
    assert page.text_content("#position").startswith(f"window {PAGE + 3} of {MANY_WINDOWS}: ")
    assert asked and all(f"limit={PAGE}" in url for url in asked)

    # Opened again, the page starts at the first item without a verdict, in the second page.
    again, errors_again = _open(browser, review.url)
    again.wait_for_selector("body[data-state=ready]:not([data-busy])")
    assert int(again.evaluate("document.body.dataset.item")) == beyond["id"]
    _press(again, "p")  # back to an item judged before: its verdict shown
    again.wait_for_selector("body[data-state=ready]:not([data-busy])")
    assert again.text_content("#position").startswith(f"window {PAGE + 2} of {MANY_WINDOWS}: ")
    assert "accept" in again.text_content("#decision .verdict")
    assert errors == [] and errors_again == []

    # The server serialises a page: limit items of the listing from offset, and the total.
    assert len(every) == MANY_WINDOWS > PAGE + 2
    five = json.loads(_raw(review.url, path=f"/api/items?limit=5&offset={PAGE}")[2])
    assert (five["total"], five["offset"], len(five["items"])) == (MANY_WINDOWS, PAGE, 5)
    assert [item["id"] for item in five["items"]] == [item["id"] for item in every[PAGE:PAGE + 5]]
    assert len(json.loads(_raw(review.url, path="/api/items")[2])["items"]) == PAGE  # the default: one page


def test_an_abstained_item_says_so_and_the_help_is_on_top(long_db, server, browser):
    from sqlalchemy import create_engine, text

    engine = create_engine(long_db)
    with engine.begin() as conn:  # no window passes: every one abstains
        conn.execute(text("update taxonomy_label set threshold = 0.999"))
    engine.dispose()
    review = server("--database", long_db)
    review.wait_ready()
    page, errors = _open(browser, review.url)
    assert page.text_content("#decision strong") == "no decision (abstained)"
    assert page.locator("#waveform [part~=region]").text_content() == "no decision (abstained)"
    page.keyboard.press("?")
    help_box, under = page.locator("#help").bounding_box(), page.locator("#spectrogram").bounding_box()
    x = (max(help_box["x"], under["x"]) + min(help_box["x"] + help_box["width"], under["x"] + under["width"])) / 2
    y = (max(help_box["y"], under["y"]) + min(help_box["y"] + help_box["height"], under["y"] + under["height"])) / 2
    assert help_box["y"] < y < under["y"] + under["height"]  # a point where the two overlap
    assert page.evaluate(f"document.elementFromPoint({x}, {y}).closest('#help') !== null")
    assert errors == []


def test_a_dataset_recording_answers_ranges_by_its_decoded_type(tmp_path):
    from datasets import Dataset

    from review.audio import respond
    from soundtag.sources.storage import Storage

    clip = write(tmp_path / "clip.wav", seconds=1.0)
    Dataset.from_dict({"audio": [clip.read_bytes()]}).save_to_disk(tmp_path / "ds")
    uri, storage = f"hf://{tmp_path}/ds:train/0#audio", Storage()
    whole = respond(uri, storage, None)
    assert whole.status_code == 200 and whole.media_type == "audio/wav" and whole.body == clip.read_bytes()
    part = respond(uri, storage, "bytes=4-11")
    assert part.status_code == 206 and part.body == clip.read_bytes()[4:12]
    for huge in ("bytes=" + "1" * 5000 + "-", "bytes=0-" + "9" * 5000, "bytes=-" + "7" * 5000):
        assert respond(uri, storage, huge).status_code == 416, huge[:12]
