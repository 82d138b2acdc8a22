"""The review web app: one recording at a time, verdicts through db.reviews, audio through
review.audio. Every request passes review.guard first."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.convertors import IntegerConvertor, register_url_convertor
from pydantic import BaseModel
from sqlalchemy import Engine

from db.jobs import job_spec
from db.reviews import file_windows, record_verdicts, review_items, undo_verdict, verdicts
from review import audio
from review.guard import BodyLimit, Guard
from review.order import Order, ordered
from soundtag.errors import ReadError, TransientReadError
from soundtag.settings import Settings
from soundtag.sources.storage import Storage
from soundtag.sources.uris import readable
from soundtag.states import Verdict

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
    """What one `soundtag review` serves: a job's results, in one order, for one reviewer."""

    job_id: str
    order: Order
    reviewer: str
    label: str | None = None


class VerdictIn(BaseModel):
    file_id: int
    verdict: Verdict
    label: str | None = None


def create_app(engine: Engine, settings: Settings, session: Session, guard: Guard) -> FastAPI:
    spec = job_spec(engine, session.job_id)
    names = spec.taxonomy.names
    items = ordered(review_items(engine, session.job_id, session.label), session.order, seed=session.job_id)
    by_id = {item.file_id: item for item in items}
    storage = Storage(settings.allowed_roots, settings.allowed_buckets)
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
        given = verdicts(engine, session.job_id)
        per_label = {name: {"reviewed": 0, "total": 0} for name in names}
        for item in items:
            counts = per_label.setdefault(item.decision or "", {"reviewed": 0, "total": 0})
            counts["total"] += 1
            counts["reviewed"] += item.file_id in given
        reviewed = sum(1 for item in items if item.file_id in given)
        return {"reviewed": reviewed, "remaining": len(items) - reviewed, "per_label": per_label,
                "verdicts": {str(k): {"verdict": v, "label": label} for k, (v, label) in given.items()}}

    @app.get("/")
    def page(request: Request):
        return templates.TemplateResponse(request, "review.html", {
            "csrf": guard.csrf, "labels": names, "reviewer": session.reviewer, "job": session.job_id,
            "model": spec.model, "taxonomy": spec.taxonomy.name, "order": session.order})

    @app.get("/api/items")
    def list_items():
        return {"items": [{"id": item.file_id, "name": readable(item.uri), "duration": item.duration_s,
                           "decision": item.decision, "margin": item.margin,
                           "labels": [vars(scored) for scored in item.labels]} for item in items],
                "progress": progress()}

    @app.get("/api/items/{file_id:id}/windows")
    def windows(file_id: int):
        item = by_id.get(file_id)
        if item is None:
            return _missing()
        return [{"start": start, "end": end, **vars(top)}
                for start, end, top in file_windows(engine, session.job_id, item.file_id)]

    @app.get("/audio/{file_id:id}")
    def audio_of(file_id: int, request: Request):
        item = by_id.get(file_id)
        if item is None:
            return _missing()
        try:
            return audio.respond(item.uri, storage, request.headers.get("range"))
        except (ReadError, TransientReadError) as exc:
            return PlainTextResponse(f"review: {exc}", status_code=404)

    @app.post("/api/verdicts")
    def give(verdict: VerdictIn):
        if verdict.file_id not in by_id:
            return _missing()
        if verdict.verdict == Verdict.CORRECT and verdict.label not in names:
            return JSONResponse({"error": f"label {verdict.label!r} is not in the taxonomy"}, status_code=422)
        # accept and reject judge the decision the page showed: the item's, read once at start,
        # rather than file_decisions again per keystroke (seconds on a large PostgreSQL archive).
        judged = verdict.label if verdict.verdict == Verdict.CORRECT else by_id[verdict.file_id].decision
        given = (verdict.file_id, verdict.verdict, session.reviewer, judged)
        record_verdicts(engine, {session.job_id: [given]})
        return {"progress": progress()}

    @app.post("/api/undo")
    def undo():
        return {"file_id": undo_verdict(engine, session.job_id, session.reviewer), "progress": progress()}

    return app


def _missing():
    return PlainTextResponse("review: no such recording in this review", status_code=404)


def serve(app: FastAPI, host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning")
