"""The review web app: one item at a time (a file, a window or an event: review.units), verdicts
through db.reviews, a segment's audio cut by review.clip, a whole recording served by
review.audio. Every request passes review.guard first."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.convertors import IntegerConvertor, register_url_convertor
from pydantic import BaseModel
from sqlalchemy import Engine

from db.jobs import job_roots, job_spec
from db.reviews import Given, all_verdicts, record_verdicts, undo_verdict, verdicts
from review import audio, clip
from review.guard import BodyLimit, Guard
from review.learning import Learner
from review.order import Order, ordered
from review.units import Unit, review_items
from soundtag.errors import AudioError, ReadError, TransientReadError
from soundtag.settings import Settings
from soundtag.states import Verdict
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


class _Id(IntegerConvertor):
    """A file id in a path: ASCII digits only ("²".isdigit() is true, int("²") fails), and few
    enough of them for int() (which refuses 4,300 digits); anything else matches no route: 404."""

    regex = "[0-9]{1,18}"


register_url_convertor("id", _Id())


@dataclass(frozen=True)
class Session:
    """What one `soundtag review` serves: a job's results as items of one unit, in one order, for
    one reviewer; a segment plays with ``context`` seconds of the recording before and after it."""

    job_id: str
    order: Order
    reviewer: str
    label: str | None = None
    unit: Unit = Unit.FILE
    context: float = 1.0
    files: tuple[int, ...] | None = None  # only these files, in this order (`--search`, `--like`)


class VerdictIn(BaseModel):
    item: int  # the item's position in this session's list
    version: int  # how many verdicts and undos the page has seen on that item: a stale one is refused
    verdict: Verdict
    label: str | None = None


def create_app(engine: Engine, settings: Settings, session: Session, guard: Guard,
               learner: Learner | None = None) -> FastAPI:
    """``learner`` orders the items (``--order learn``) and, with ``--learn``, retrains its head."""
    spec = job_spec(engine, session.job_id)
    names = spec.taxonomy.names
    items = review_items(engine, session.job_id, session.unit, session.label)
    if session.files is not None:  # a queue from a search: its hits' files, nearest first
        rank = {file_id: n for n, file_id in enumerate(session.files)}
        items = sorted((item for item in items if item.file_id in rank), key=lambda item: rank[item.file_id])
    elif learner is None:
        items = ordered(items, session.order, seed=session.job_id)
    # An item's id is its place in this list, whatever order the learner shows them in.
    number = {id(item): n for n, item in enumerate(items)}
    position = {}
    for n, item in enumerate(items):
        position.setdefault(item.key, n)
    recordings = {item.file_id: item.uri for item in items}  # by the ids the page was given
    given = all_verdicts(engine, session.job_id)
    versions = [0] * len(items)
    # Requests run in a thread pool: a verdict's check of the version, its write and the new
    # version are one step, so a double press's second request sees the first one's version.
    lock = threading.Lock()
    # Recordings are served only from where the job found them, whatever a path points to now.
    storage = Storage(settings.allowed_roots, settings.allowed_buckets, sources=job_roots(engine, session.job_id))
    clips = clip.Clips(storage)
    templates = Jinja2Templates(directory=HERE / "templates")
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def _guarded(request: Request, call_next):
        response = guard.check(request) or await call_next(request)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = PAGE_POLICY if request.url.path == "/" else DATA_POLICY
        return response

    app.add_middleware(BodyLimit)

    def progress() -> dict:
        per_label = {name: {"reviewed": 0, "total": 0} for name in names}
        reviewed = 0
        for item in items:
            counts = per_label.setdefault(item.decision or "", {"reviewed": 0, "total": 0})
            counts["total"] += 1
            done = item.key in given
            counts["reviewed"] += done
            reviewed += done
        return {"reviewed": reviewed, "remaining": len(items) - reviewed, "per_label": per_label}

    def verdict_of(n: int) -> dict | None:
        found = given.get(items[n].key)
        return {"verdict": found[0], "label": found[1]} if found else None

    def clip_bounds(item) -> tuple[float, float]:
        if item.start_s is None:
            return 0.0, item.duration_s or clip.MAX_SECONDS
        return max(0.0, item.start_s - session.context), item.end_s + session.context

    @app.get("/")
    def page(request: Request):
        return templates.TemplateResponse(request, "review.html", {
            "csrf": guard.csrf, "labels": names, "reviewer": session.reviewer, "job": session.job_id,
            "model": spec.model, "taxonomy": spec.taxonomy.name, "order": session.order, "unit": session.unit})

    @app.get("/favicon.ico")
    def favicon():
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    def current() -> list:
        if learner is None or session.files is not None:
            return items
        return learner.order(items, reviewed=list(verdicts(engine, session.job_id)))

    @app.get("/api/items")
    def list_items():
        listed = ((number[id(item)], item) for item in current())
        return {"unit": session.unit, "items": [
            {"id": n, "file": item.file_id, "name": readable(item.uri), "duration": item.duration_s,
             "start": item.start_s, "end": item.end_s, "clip_start": clip_bounds(item)[0],
             "decision": item.decision, "margin": item.margin, "labels": [vars(scored) for scored in item.labels],
             "given": verdict_of(n), "version": versions[n]} for n, item in listed],
            "progress": progress(), "learning": learner.status() if learner else None}

    @app.get("/api/learning")
    def learning():
        return learner.status() if learner else {"head": None}

    @app.get("/api/items/{n:id}/audio")
    def segment_audio(n: int):
        if n >= len(items):
            return _missing()
        item = items[n]
        try:
            cut = clips.cut(item.uri, *clip_bounds(item))
        except (ReadError, TransientReadError, AudioError) as exc:
            return PlainTextResponse(f"review: {exc}", status_code=404)
        return Response(cut.wav(), media_type="audio/wav", headers={
            "X-Soundtag-Clip-Start": f"{cut.start_s:.6f}", "X-Soundtag-Rate": str(cut.rate),
            "X-Soundtag-Source-Rate": str(cut.source_rate)})

    @app.get("/audio/{file_id:id}")
    def audio_of(file_id: int, request: Request):
        uri = recordings.get(file_id)
        if uri is None:
            return _missing()
        try:
            return audio.respond(uri, storage, request.headers.get("range"))
        except (ReadError, TransientReadError) as exc:
            return PlainTextResponse(f"review: {exc}", status_code=404)

    @app.post("/api/verdicts")
    def give(verdict: VerdictIn):
        if not 0 <= verdict.item < len(items):
            return _missing()
        if verdict.verdict == Verdict.CORRECT and verdict.label not in names:
            return JSONResponse({"error": f"label {verdict.label!r} is not in the taxonomy"}, status_code=422)
        item = items[verdict.item]
        # accept and reject judge the decision the page showed: the item's, read once at start,
        # rather than file_decisions again per keystroke (seconds on a large PostgreSQL archive).
        judged = verdict.label if verdict.verdict == Verdict.CORRECT else item.decision
        with lock:
            if verdict.version != versions[verdict.item]:
                return JSONResponse({"error": "this item changed since the page showed it (a second press?)",
                                     "given": verdict_of(verdict.item), "version": versions[verdict.item]},
                                    status_code=409)
            record_verdicts(engine, {session.job_id: [Given(
                item.file_id, verdict.verdict, session.reviewer, judged, item.start_s, item.end_s, item.decision)]})
            given[item.key] = (verdict.verdict, judged)
            versions[verdict.item] += 1
        if learner:
            learner.verdict_given()
        return {"given": verdict_of(verdict.item), "version": versions[verdict.item], "progress": progress(),
                "learning": learner.status() if learner else None}

    @app.post("/api/undo")
    def undo():
        with lock:
            key = undo_verdict(engine, session.job_id, session.reviewer)
            given.clear()
            given.update(all_verdicts(engine, session.job_id))
            n = position.get(key)
            if n is not None:
                versions[n] += 1
            return {"item": n, "given": verdict_of(n) if n is not None else None,
                    "version": versions[n] if n is not None else None, "progress": progress()}

    return app


def _missing():
    return PlainTextResponse("review: no such item in this review", status_code=404)


def serve(app: FastAPI, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")
