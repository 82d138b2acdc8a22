"""The review page for a team (`soundtag reviewers`): each person signs in with their own token,
their verdicts carry their name, a viewer records nothing, and a removed person's open page is
refused from its next request. A real server, a real Chromium, the `reviews` view read back."""

from __future__ import annotations

import pytest

from tests.audio_files import write
from tests.conftest import query, soundtag, wait_for
from tests.test_review import LABELS, _shown, _status, browser, labeled, server  # noqa: F401 - fixtures


def _add(url: str, name: str, role: str = "reviewer") -> str:
    return soundtag("reviewers", "add", name, "--role", role, "--database", url).stdout.strip()


def _started(review) -> None:
    """Wait for the server: with a team, everything it serves answers 401 until one signs in."""
    wait_for(lambda: review.proc.poll() is not None or _status(review.url + "/static/review.css") == 401, 60,
             "the review server to answer")
    assert review.proc.poll() is None, review.log_path.read_text()


def _signed_in(browser, review, token: str):  # noqa: F811
    page = browser.new_context().new_page()
    page.goto(f"{review.url}/?token={token}")
    assert "token" not in page.url
    _shown(page)
    return page


def _verdict(page, review):
    """Accept the item on screen as a script of the page would: its CSRF header, same origin."""
    body = {"item": int(page.evaluate("document.body.dataset.item")), "version": 0, "verdict": "accept"}
    return page.request.post(f"{review.url}/api/verdicts", data=body, headers={
        "Origin": review.url, "X-Soundtag-CSRF": page.evaluate("document.body.dataset.csrf")})


def test_each_signed_in_reviewers_verdicts_carry_their_own_name(labeled, server, browser):  # noqa: F811
    ana, bob = _add(labeled, "ana"), _add(labeled, "bob", "admin")
    review = server("--database", labeled, "--overlap", "1")  # every item to both: bob is handed some too
    _started(review)
    assert _status(review.url + "/") == 401 and _status(review.url + "/api/items") == 401  # nobody signed in
    assert ana not in review.log_path.read_text() and "each with their own token" in review.log_path.read_text()
    assert _status(f"{review.url}/?token={ana}x") == 401 and _status(f"{review.url}/?token=nobody") == 401
    for n, (token, name) in enumerate([(ana, "ana"), (bob, "bob")], 1):
        page = _signed_in(browser, review, token)
        assert f"reviewer {name}" in page.text_content("header")
        page.keyboard.press("a")
        wait_for(lambda: len(query(labeled, "select * from reviews")) == n, 30, f"{name}'s verdict")
    rows = query(labeled, "select reviewer, verdict from reviews order by reviewed_at")
    assert [tuple(row) for row in rows] == [("ana", "accept"), ("bob", "accept")]


def test_a_viewer_listens_but_their_verdicts_are_refused(labeled, server, browser):  # noqa: F811
    viewer = _add(labeled, "cy", "viewer")
    review = server("--database", labeled)
    _started(review)
    page = _signed_in(browser, review, viewer)
    assert "reviewer cy" in page.text_content("header")
    assert page.request.get(f"{review.url}/api/items/0/audio").status == 200
    assert _verdict(page, review).status == 403
    assert page.request.post(f"{review.url}/api/undo", headers={
        "Origin": review.url, "X-Soundtag-CSRF": page.evaluate("document.body.dataset.csrf")}).status == 403
    assert query(labeled, "select * from reviews") == []


def test_a_removed_reviewers_open_page_is_refused_on_its_next_request(labeled, server, browser):  # noqa: F811
    ana = _add(labeled, "ana")
    review = server("--database", labeled)
    _started(review)
    page = _signed_in(browser, review, ana)
    assert page.request.get(f"{review.url}/api/items").status == 200
    soundtag("reviewers", "remove", "ana", "--database", labeled)
    assert page.request.get(f"{review.url}/api/items").status == 401
    assert _verdict(page, review).status == 401
    assert page.request.get(f"{review.url}/api/items").status == 401  # and it stays so
    assert query(labeled, "select * from reviews") == []


@pytest.fixture
def archive_of_45(tmp_path, tiny_clap, sqlite_url):
    """45 labeled one-second recordings: more than two people are handed at once (review.handout.BATCH)."""
    for n in range(45):
        write(tmp_path / "archive" / f"r{n:02}.wav", seconds=1.0, freq=200.0 + 37.0 * n)
    soundtag("run", str(tmp_path / "archive"), "--labels", LABELS, "--model", str(tiny_clap), "--database", sqlite_url)
    return sqlite_url


def test_three_reviewers_at_once_judge_apart_but_for_the_overlap_sample(archive_of_45, server, browser):  # noqa: F811
    url = archive_of_45
    tokens = [_add(url, name) for name in ("ana", "bob", "cy")]
    review = server("--database", url, "--overlap", "0.2")
    _started(review)
    pages = [_signed_in(browser, review, token) for token in tokens]
    settled = "body:not([data-busy]):is([data-state=ready], [data-state=done], [data-state=empty])"
    for _ in range(60):  # rounds: 54 verdicts to give, a share of them each round
        if not any(page.evaluate("document.body.dataset.state") == "ready" for page in pages):
            break
        for page in pages:  # in turn, so that each is handed items while the others hold theirs
            if page.evaluate("document.body.dataset.state") == "ready":
                page.keyboard.press("a")
                page.wait_for_selector(settled)
    else:
        pytest.fail("the pages are still handed items after 60 rounds")
    rows = query(url, "select uri, reviewer from reviews")
    judges: dict[str, list[str]] = {}
    for row in rows:
        judges.setdefault(row.uri, []).append(row.reviewer)
    assert len(judges) == 45  # every item judged
    assert sorted(len(people) for people in judges.values()) == [1] * 36 + [2] * 9  # 20% of 45 by two
    assert all(len(set(people)) == len(people) for people in judges.values())  # two different people
    assert {person for people in judges.values() for person in people} == {"ana", "bob", "cy"}
    assert all("nothing left" in page.text_content("#done") for page in pages)
