"""The review web app: one item at a time (a file, a window or an event: review.units), its routes
thin over review.queue's ReviewQueue (items, versions, verdicts, undo), a segment's audio cut by
review.clip, a whole recording served by review.audio. Every request passes review.guard first;
with a team, ``--order adjudicate`` serves its admins only, and only an admin reads the team's
progress (``/api/team``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.convertors import IntegerConvertor, register_url_convertor
from pydantic import BaseModel
from sqlalchemy import Engine

from db.jobs import job_roots, job_spec
from review import audio, clip, overview
from review.guard import BodyLimit, Guard
from review.handout import BATCH
from review.learning import Learner
from review.listing import PAGE, Listings
from review.queue import ReviewQueue, Session
from soundtag.errors import (
    AudioError, HeldByAnother, NoSuchItem, NotInTaxonomy, ReadError, StaleVersion, TransientReadError,
)
from soundtag.settings import Settings
from soundtag.states import Role, Verdict
from soundtag.sources.storage import Storage
from soundtag.sources.uris import readable

HERE = Path(__file__).parent
# The page runs its own scripts only (no inline ones, none from elsewhere); wavesurfer styles its
# shadow DOM inline and draws from blob: and data: URLs.
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data: blob:; media-src 'self' blob:; worker-src 'self' blob:; object-src 'none'; "
               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# Everything else (recordings above all) is data: opened directly, it runs nothing.
DATA_POLICY = "sandbox"
PAGES = {"/", "/overview"}


class _Id(IntegerConvertor):
    """A file id in a path: ASCII digits only ("²".isdigit() is true, int("²") fails), and few
    enough of them for int() (which refuses 4,300 digits); anything else matches no route: 404."""

    regex = "[0-9]{1,18}"


register_url_convertor("id", _Id())


class VerdictIn(BaseModel):
    item: int  # the item's position in this session's list
    version: int  # how many verdicts and undos the page has seen on that item: a stale one is refused
    verdict: Verdict
    label: str | None = None


def create_app(engine: Engine, settings: Settings, session: Session, guard: Guard, reviewer: str,
               learner: Learner | None = None, overlap: float = 0.1) -> FastAPI:
    """Verdicts are ``reviewer``'s, or with a team (``guard.team``) the signed-in person's, each
    handed their own items, ``overlap`` of them to two people. ``learner`` orders the items
    (``--order learn``) and, with ``--learn``, retrains its head."""
    spec = job_spec(engine, session.job_id)
    queue = ReviewQueue(engine, session, learner, overlap if guard.team is not None else None)
    # Recordings are served only from where the job found them, whatever a path points to now.
    storage = Storage(settings.allowed_roots, settings.allowed_buckets, sources=job_roots(engine, session.job_id))
    clips = clip.Clips(storage)
    listings = Listings()
    templates = Jinja2Templates(directory=HERE / "templates")
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def admit(request: Request) -> Response | None:
        """The guard's refusal, or None; a team's person at work keeps the items handed to them.
        Adjudication settles what the team could not: a team's admins only (one person without a
        team settles their own)."""
        refused = guard.check(request)
        if refused is None and guard.team is not None:
            person = request.state.reviewer
            if queue.adjudicates and person.role != Role.ADMIN:
                return PlainTextResponse(f"review: --order adjudicate is for the team's admins; {person.name} is a "
                                         f"{person.role}", status_code=403)
            queue.renew(person.name)
        return refused

    @app.middleware("http")
    async def _guarded(request: Request, call_next):
        # The guard may read the team's table, and a renewal waits for the queue's lock: both off
        # the event loop, as the routes' reads are.
        response = await run_in_threadpool(admit, request) or await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = PAGE_POLICY if request.url.path in PAGES else DATA_POLICY
        return response

    app.add_middleware(BodyLimit)

    def clip_bounds(item) -> tuple[float, float]:
        if item.start_s is None:
            return 0.0, item.duration_s or clip.MAX_SECONDS
        return max(0.0, item.start_s - session.context), item.end_s + session.context

    def who(request: Request) -> str:
        return request.state.reviewer.name if guard.team is not None else reviewer

    def handing(request: Request) -> bool:
        """A team's person who judges is handed their own items; a viewer browses them all."""
        return guard.team is not None and request.state.reviewer.role != Role.VIEWER

    def is_admin(request: Request) -> bool:
        return guard.team is not None and request.state.reviewer.role == Role.ADMIN

    def learning_status() -> dict | None:
        return learner.status() if learner else None

    @app.get("/")
    def page(request: Request):
        return templates.TemplateResponse(request, "review.html", {
            "csrf": guard.csrf, "labels": queue.labels, "reviewer": who(request), "job": session.job_id,
            "model": spec.model, "taxonomy": spec.taxonomy.name, "order": session.order, "unit": session.unit,
            "admin": is_admin(request)})

    @app.get("/favicon.ico")
    def favicon():
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    @app.get("/overview")
    def overview_page(request: Request):
        return templates.TemplateResponse(request, "overview.html", {
            "job": session.job_id, "model": spec.model, "taxonomy": spec.taxonomy.name})

    @app.get("/api/overview")
    def overview_numbers(site: str | None = None):
        return overview.overview(engine, session.job_id, site)

    @app.get("/api/overview/histogram")
    def overview_histogram(label: str):
        if label not in queue.labels:
            return _missing()
        return overview.histogram(engine, session.job_id, label)

    @app.get("/api/items")
    def list_items(request: Request, label: str | None = None, site: str | None = None, day: str | None = None,
                   hour: int | None = None, low: float | None = None, high: float | None = None,
                   listing: int | None = None, offset: int = Query(0, ge=0),
                   limit: int = Query(PAGE, ge=1), after: int | None = Query(None, ge=-1), item: int | None = None):
        """One page of the listing the page walks (``listing``; a new one of the order as it is now
        when absent or no longer kept): ``limit`` items from place ``offset``, or the page holding
        the first item without a verdict after place ``after``, or the page holding item ``item``;
        ``position`` is the place found. Only the page's items are serialised (issue 27)."""
        reviewer_now = who(request)
        # Each dispute is the admin's to settle, as if handed to them; read on every request, so
        # votes given since show.
        disputes = queue.disputes() if queue.adjudicates else None
        handed = handing(request) or disputes is not None
        found = listings.get(listing, reviewer_now) if listing is not None else None
        made = found is None
        if made:
            if disputes is not None:
                shown = [(n, one) for n, one, _ in disputes]
            else:
                shown = queue.handed(reviewer_now, BATCH) if handing(request) else queue.shown()
            if label is not None:  # what an overview chart's point counts
                scores = None if low is None or high is None else (low, high)
                counted = {id(one) for one in overview.counted(engine, session.job_id, [one for _, one in shown],
                                                               label, site, day, hour, scores)}
                shown = [(n, one) for n, one in shown if id(one) in counted]
            found = listings.make(shown, reviewer_now)
        votes = {n: people for n, _, people in disputes} if disputes is not None else {}

        def given(n: int) -> dict | None:
            # What is handed to a person is theirs to judge, whoever else judged it (the overlap).
            return None if handed else queue.given(n)

        position = None
        if after is not None:
            position = found.next_open(after, lambda n: given(n) is None, wrap=not handed)
        elif item is not None:
            position = found.place_of(item)
        if position is not None:
            offset = position - position % limit
        # Plain JSON values already: FastAPI's own encoding walks every value again (issue 27).
        return JSONResponse({
            "unit": session.unit, "handed": handed, "listing": found.number, "total": len(found.shown),
            "offset": offset, "position": position, "items": [
                {"id": n, "file": one.file_id, "name": readable(one.uri), "duration": one.duration_s,
                 "start": one.start_s, "end": one.end_s, "clip_start": clip_bounds(one)[0],
                 "decision": one.decision, "margin": one.margin, "labels": [vars(scored) for scored in one.labels],
                 "given": given(n), "version": queue.version(n, reviewer_now),
                 **({"votes": votes.get(n, {})} if disputes is not None else {})}
                for n, one in found.page(offset, limit)],
            # The page reads the counts from a new listing's answer only (later verdicts' answers carry them).
            "progress": queue.progress() if made else None, "learning": learning_status()})

    @app.get("/api/team")
    def team(request: Request):
        if not is_admin(request):
            return PlainTextResponse("review: the team's progress is for its admins", status_code=403)
        # Today as the server's clock has it: where the team works, whatever zone the stamps are in.
        midnight = datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0)
        return queue.team(midnight).as_json()

    @app.get("/api/learning")
    def learning():
        return learner.status() if learner else {"head": None}

    @app.get("/api/items/{n:id}/audio")
    def segment_audio(n: int):
        try:
            item = queue.item(n)
            cut = clips.cut(item.uri, *clip_bounds(item))
        except NoSuchItem:
            return _missing()
        except (ReadError, TransientReadError, AudioError) as exc:
            return PlainTextResponse(f"review: {exc}", status_code=404)
        return Response(cut.wav(), media_type="audio/wav", headers={
            "X-Soundtag-Clip-Start": f"{cut.start_s:.6f}", "X-Soundtag-Rate": str(cut.rate),
            "X-Soundtag-Source-Rate": str(cut.source_rate)})

    @app.get("/audio/{file_id:id}")
    def audio_of(file_id: int, request: Request):
        uri = queue.recording(file_id)  # only the ids the page was given
        if uri is None:
            return _missing()
        try:
            return audio.respond(uri, storage, request.headers.get("range"))
        except (ReadError, TransientReadError) as exc:
            return PlainTextResponse(f"review: {exc}", status_code=404)

    @app.post("/api/verdicts")
    def give(verdict: VerdictIn, request: Request):
        try:
            queue.give(who(request), verdict.item, verdict.version, verdict.verdict, verdict.label)
        except NoSuchItem:
            return _missing()
        except NotInTaxonomy as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        except (StaleVersion, HeldByAnother) as exc:
            return JSONResponse({"error": str(exc), "given": queue.given(verdict.item),
                                 "version": queue.version(verdict.item, who(request))}, status_code=409)
        return {"given": queue.given(verdict.item), "version": queue.version(verdict.item, who(request)),
                "progress": queue.progress(), "learning": learning_status()}

    @app.post("/api/undo")
    def undo(request: Request):
        n = queue.undo(who(request))
        return {"item": n, "given": queue.given(n) if n is not None else None,
                "version": queue.version(n, who(request)) if n is not None else None, "progress": queue.progress()}

    return app


def _missing():
    return PlainTextResponse("review: no such item in this review", status_code=404)


def serve(app: FastAPI, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")
