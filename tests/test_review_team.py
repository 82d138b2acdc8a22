"""The review page for a team (`soundtag reviewers`): each person signs in with their own token,
their verdicts carry their name, a viewer records nothing, and a removed person's open page is
refused from its next request. A real server, a real Chromium, the `reviews` view read back."""

from __future__ import annotations

from tests.conftest import query, soundtag, wait_for
from tests.test_review import _shown, _status, browser, labeled, server  # noqa: F401 - fixtures


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
    review = server("--database", labeled)
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
