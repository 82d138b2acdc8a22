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
    assert int(page.evaluate("document.body.dataset.regions")) >= 1
    assert page.locator("#spectrogram canvas").count() >= 1

    partial = page.request.get(f"{review.url}/audio/{file_id}", headers={"Range": "bytes=0-99"})
    assert partial.status == 206 and partial.headers["content-range"].startswith("bytes 0-99/")
    assert len(partial.body()) == 100

    decisions = dict(query(labeled, "select uri, label from file_labels where rank = 1"))
    page.keyboard.press("a")
    page.wait_for_selector("#progress:has-text('1 reviewed')")
    assert _current(labeled) == [("file://" + first, "accept", decisions["file://" + first], "alice")]

    _, second = _shown(page)
    assert second != first
    page.keyboard.press("x")
    page.wait_for_selector("#progress:has-text('2 reviewed')")
    assert _current(labeled)[1] == ("file://" + second, "reject", decisions["file://" + second], "alice")

    _, third = _shown(page)
    page.keyboard.press("3")
    page.wait_for_selector("#progress:has-text('3 reviewed')")
    assert _current(labeled)[2] == ("file://" + third, "correct", "siren", "alice")

    _shown(page)
    page.keyboard.press("u")
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
    assert page.request.get(f"{review.url}/static/../../../etc/passwd").status == 404


def test_post_from_another_origin_is_refused(labeled, server, browser):
    review = server("--database", labeled)
    review.wait_ready()
    page = browser.new_page()
    page.goto(review.url + "/")
    file_id, _ = _shown(page)
    body = {"file_id": int(file_id), "verdict": "accept"}
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


def test_a_recording_named_html_is_served_as_inert_audio(disguised, server):
    review = server("--database", disguised)
    review.wait_ready()
    status, headers, body = _raw(review.url, path="/api/items")
    [item] = json.loads(body)["items"]
    assert item["name"].endswith("x.html")
    status, headers, body = _raw(review.url, path=f"/audio/{item['id']}")
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
    assert _raw(review.url, path="/api/items", headers={"Cookie": "soundtag_review=s3cret-token"})[0] == 401
    assert _raw(review.url, path="/api/items", headers={"Cookie": "soundtag_review=guessed"})[0] == 401


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
