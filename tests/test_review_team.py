"""The review page for a team (`soundtag reviewers`): each person signs in with their own token,
their verdicts carry their name, a viewer records nothing, and a removed person's open page is
refused from its next request. A real server, a real Chromium, the `reviews` view read back."""

from __future__ import annotations

import pytest

from db.reviews import Given, given_verdicts, record_verdicts
from db.schema import engine_for
from tests.audio_files import write
from tests.conftest import query, soundtag, wait_for
from tests.test_review import LABELS, _press, _shown, _status, browser, labeled, server  # noqa: F401 - fixtures


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
        _press(page, "a")
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
                _press(page, "a")
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


def _decision(page) -> str:
    """The model's decision on the item on screen, as the team's progress names it ("": none)."""
    shown = page.text_content("#decision strong")
    return "" if shown.startswith("no decision") else shown


def test_a_disagreement_goes_to_the_admins_adjudication_and_their_verdict_is_what_training_reads(
        labeled, server, browser):  # noqa: F811
    ana, bob, lead = _add(labeled, "ana"), _add(labeled, "bob"), _add(labeled, "lead", "admin")
    team = server("--database", labeled, "--overlap", "1")  # every item to two people
    _started(team)
    ana_page = _signed_in(browser, team, ana)
    file_id, decision = ana_page.evaluate("document.body.dataset.file"), _decision(ana_page)
    other = next(n for n, label in enumerate(LABELS.split(","), 1) if label != decision)
    _press(ana_page, "a")
    wait_for(lambda: len(query(labeled, "select * from reviews")) == 1, 30, "ana's verdict")
    # bob's page opens after ana's verdict: its version of the item is the one she left
    bob_page = _signed_in(browser, team, bob)
    assert bob_page.evaluate("document.body.dataset.file") == file_id  # the overlap: the same item to both
    _press(bob_page, str(other))
    wait_for(lambda: len(query(labeled, "select * from reviews")) == 2, 30, "bob's verdict")
    assert [tuple(row) for row in query(labeled, "select votes, agreed, label from consensus")] == [(2, False, None)]

    adjudicate = server("--database", labeled, "--order", "adjudicate")
    _started(adjudicate)
    page = _signed_in(browser, adjudicate, lead)
    assert page.evaluate("document.body.dataset.file") == file_id
    votes = {span.get_attribute("data-reviewer"): span.text_content() for span in page.query_selector_all("#votes .vote")}
    assert votes.keys() == {"ana", "bob"}
    assert votes["ana"].endswith(f"ana → {decision}") and votes["bob"].endswith(f"bob → {LABELS.split(',')[other - 1]}")
    _press(page, str(other))  # the lead sides with bob
    page.wait_for_selector("body[data-state=done]")  # it was the only dispute: it left the queue
    wait_for(lambda: query(labeled, "select reviewer from review where adjudicated"), 30, "the adjudication")
    assert [tuple(row) for row in query(labeled, "select reviewer from review where adjudicated")] == [("lead",)]
    assert page.request.get(f"{adjudicate.url}/api/items").json()["items"] == []
    engine = engine_for(labeled)
    taught = given_verdicts(engine, [int(file_id)])
    assert [(v.verdict, v.label) for v in taught] == [("correct", LABELS.split(",")[other - 1])]


def test_only_an_admin_may_adjudicate_and_one_person_without_a_team_may(labeled, server, browser):  # noqa: F811
    ana, cy = _add(labeled, "ana"), _add(labeled, "cy", "viewer")
    adjudicate = server("--database", labeled, "--order", "adjudicate")
    _started(adjudicate)
    for token, name in [(ana, "ana"), (cy, "cy")]:
        page = browser.new_context().new_page()
        answer = page.goto(f"{adjudicate.url}/?token={token}")
        assert answer.status == 403 and "--order adjudicate is for the team's admins" in page.text_content("body")
        assert name in page.text_content("body")
        assert page.request.get(f"{adjudicate.url}/api/items").status == 403
    adjudicate.stop()
    soundtag("reviewers", "remove", "ana", "--database", labeled)
    soundtag("reviewers", "remove", "cy", "--database", labeled)
    engine = engine_for(labeled)  # the team is gone: one person on loopback, and two votes apart
    job = query(labeled, "select id from job")[0][0]
    file_id = query(labeled, "select min(id) from file")[0][0]
    record_verdicts(engine, {job: [Given(file_id, "accept", "ana", "rain"), Given(file_id, "reject", "bob", "rain")]})
    alone = server("--database", labeled, "--order", "adjudicate", "--reviewer", "solo")
    alone.wait_ready()
    page = browser.new_page()
    page.goto(alone.url + "/")
    _shown(page)
    assert page.evaluate("document.body.dataset.file") == str(file_id)
    _press(page, "x")
    page.wait_for_selector("body[data-state=done]")
    wait_for(lambda: query(labeled, "select reviewer from review where adjudicated"), 30, "the adjudication")
    assert [tuple(row) for row in query(labeled, "select reviewer, verdict from review where adjudicated")] == [
        ("solo", "reject")]


def test_the_admin_sees_the_teams_progress_and_a_reviewer_does_not(archive_of_45, server, browser):  # noqa: F811
    url = archive_of_45
    ana, bob, lead = _add(url, "ana"), _add(url, "bob"), _add(url, "lead", "admin")
    review = server("--database", url, "--overlap", "1")
    _started(review)
    ana_page = _signed_in(browser, review, ana)
    decisions = [_decision(ana_page)]
    _press(ana_page, "a")
    ana_page.wait_for_selector("body:not([data-busy])[data-state=ready]")
    decisions.append(_decision(ana_page))
    _press(ana_page, "a")
    bob_page = _signed_in(browser, review, bob)  # handed ana's first item too: the overlap
    _press(bob_page, "a")
    wait_for(lambda: len(query(url, "select * from reviews")) == 3, 30, "three verdicts")
    assert ana_page.locator("#team").count() == 0
    assert ana_page.request.get(f"{review.url}/api/team").status == 403

    page = _signed_in(browser, review, lead)  # handed 20 items of its own: the first 20 are ana's and bob's
    page.wait_for_selector("#team[data-loaded]")  # read as the page opened, perhaps before its handout
    loaded = page.get_attribute("#team", "data-loaded")
    page.click("#team-refresh")
    page.wait_for_selector(f"#team:not([data-loaded='{loaded}'])")

    def cells(row):
        return [cell.text_content() for cell in row.query_selector_all("td")]

    people = {row.get_attribute("data-person"): cells(row) for row in page.query_selector_all("#team-people tbody tr")}
    assert people == {"ana": ["ana", "reviewer", "2", "2", "18", "100% of 1"],
                      "bob": ["bob", "reviewer", "1", "1", "19", "100% of 1"],
                      "lead": ["lead", "admin", "0", "0", "20", "—"]}
    labels = {row.get_attribute("data-label"): cells(row)[1:] for row in page.query_selector_all("#team-labels tbody tr")}
    judged = {label: int(row[0]) for label, row in labels.items() if int(row[0])}
    assert judged == {label: decisions.count(label) for label in decisions}
    assert sum(int(row[2]) for row in labels.values()) == 43 and all(row[1] == "0" for row in labels.values())
