"""`runner review FILE`: a local web app to audition a build and decide about each take.

    http://127.0.0.1:PORT/TOKEN/                 the page (runner/report/review_page.py)
    GET  TOKEN/api/assets                        every take, grouped by job
    GET  TOKEN/api/detail?id=JOB                 one take: prompt, settings, facts
    POST TOKEN/api/views    {"ids": [...]}       waveforms, durations, loudness
    POST TOKEN/api/decide   {"id", "decision", "note"}
    POST TOKEN/api/pick     {"group", "take"}
    GET  TOKEN/audio?id=JOB                      the file to play (ranges served)

Who can use it: it listens on 127.0.0.1 only, and every path starts with a random
token printed once on the terminal (compared in constant time; anything else is a
404). Host headers other than the loopback names are refused (DNS rebinding), as
are cross-origin and non-JSON writes; the page runs under a strict content
security policy with a per-page nonce and sends no referrer, so the token does
not leak to anything the page links to.

The model is runner.report.review_session (plain, blocking): its calls run in worker
threads, waveform decodes in a pool of their own (one ffmpeg per core), so
listening and deciding never wait behind a screenful of decodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from runner.errors import RunnerError, UsageError
from runner.report.audio import AudioView
from runner.report.collect import secrets_of
from runner.report.review_page import render
from runner.report.review_session import ReviewSession

LOOPBACK = "127.0.0.1"
MAX_VIEW_IDS = 64  # per request: the page asks for a screenful in batches
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class _Pools:
    work: ThreadPoolExecutor  # listing, details, decisions: quick, file-bound
    decode: ThreadPoolExecutor  # waveforms and loudness: one ffmpeg each


def _view_json(view: AudioView | None) -> dict[str, Any]:
    if view is None:
        return {"peaks": None, "d": None, "lufs": None, "tp": None, "problem": "not built"}
    return {"peaks": view.peaks_b64 if view.peaks else None, "d": view.duration_s,
            "lufs": view.lufs, "tp": view.true_peak_dbtp, "problem": view.problem,
            "preview": view.preview_reason}


class ReviewApp:
    """The aiohttp application over one session; `token` is the path's secret."""

    def __init__(self, session: ReviewSession, token: str | None = None) -> None:
        self.session = session
        self.token = token or secrets.token_urlsafe(24)
        self.port = 0
        self.pools = _Pools(ThreadPoolExecutor(4, thread_name_prefix="review"),
                            ThreadPoolExecutor(2, thread_name_prefix="review-decode"))
        self.secrets = secrets_of(session.pipeline)
        # One decode per file at a time, however many requests ask for it.
        self._decoding: dict[str, asyncio.Future[AudioView | None]] = {}

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=256 * 1024)
        prefix = f"/{self.token}"
        app.router.add_get(prefix, self._redirect)
        app.router.add_get(f"{prefix}/", self._page)
        app.router.add_get(f"{prefix}/api/assets", self._assets)
        app.router.add_get(f"{prefix}/api/detail", self._detail)
        app.router.add_post(f"{prefix}/api/views", self._views)
        app.router.add_post(f"{prefix}/api/decide", self._decide)
        app.router.add_post(f"{prefix}/api/pick", self._pick)
        app.router.add_get(f"{prefix}/audio", self._audio)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, app: web.Application) -> None:
        self.pools.work.shutdown(wait=False, cancel_futures=True)
        self.pools.decode.shutdown(wait=False, cancel_futures=True)

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        hosts = {f"{name}:{self.port}" for name in (LOOPBACK, "localhost", "[::1]")}
        if request.host not in hosts:
            return web.json_response({"error": "this server answers on 127.0.0.1 only"},
                                     status=421)
        first = request.path.split("/", 2)[1]
        if not secrets.compare_digest(first.encode(), self.token.encode()):
            return web.json_response({"error": "not found"}, status=404)
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin is not None and origin != f"http://{request.host}":
                return web.json_response({"error": "cross-origin request refused"}, status=403)
            if request.content_type != "application/json":
                return web.json_response({"error": "expected application/json"}, status=415)
        try:
            response = await handler(request)
        except UsageError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        except RunnerError as exc:
            return web.json_response({"error": str(exc)}, status=500)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def _json(self, data: Any) -> web.Response:
        """A JSON answer, scrubbed of every configured key (as the report is): the build's
        text holds none, but a key pasted into a prompt must not reach a page either."""
        text = json.dumps(data, ensure_ascii=False)
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return web.Response(text=text, content_type="application/json")

    async def _run(self, call: Callable[[], Any], *, decode: bool = False) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pools.decode if decode else self.pools.work, call)

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/{self.token}/")

    async def _page(self, request: web.Request) -> web.StreamResponse:
        nonce = secrets.token_urlsafe(16)
        response = web.Response(text=render(self.session.pipeline.name, nonce),
                                content_type="text/html")
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; media-src 'self'; img-src 'self' data:; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        return response

    async def _assets(self, request: web.Request) -> web.StreamResponse:
        return self._json(await self._run(self.session.listing))

    async def _detail(self, request: web.Request) -> web.StreamResponse:
        job_id = request.query.get("id", "")
        return self._json(await self._run(lambda: self.session.detail(job_id)))

    async def _body(self, request: web.Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise UsageError("the request body is not JSON") from None
        if not isinstance(body, dict):
            raise UsageError("expected a JSON object")
        return body

    async def _view(self, job_id: str) -> AudioView | None:
        future = self._decoding.get(job_id)
        if future is None:
            future = asyncio.ensure_future(self._run(lambda: self.session.view(job_id),
                                                     decode=True))
            self._decoding[job_id] = future
            future.add_done_callback(lambda _: self._decoding.pop(job_id, None))
        result: AudioView | None = await asyncio.shield(future)
        return result

    async def _views(self, request: web.Request) -> web.StreamResponse:
        ids = (await self._body(request)).get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise UsageError("ids: expected a list of take ids")
        if len(ids) > MAX_VIEW_IDS:
            raise UsageError(f"at most {MAX_VIEW_IDS} ids per request")
        views = await asyncio.gather(*(self._view(i) for i in ids))
        return web.json_response({i: _view_json(v) for i, v in zip(ids, views, strict=True)})

    async def _decide(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        job_id, decision, note = body.get("id"), body.get("decision"), body.get("note", "")
        if not isinstance(job_id, str) or not isinstance(decision, str) \
                or not isinstance(note, str):
            raise UsageError("expected {id, decision, note} strings")
        asset = await self._run(lambda: self.session.decide(job_id, decision, note))
        group = await self._run(lambda: self.session.group_assets(job_id))
        return self._json({"asset": asset, "group": group})

    async def _pick(self, request: web.Request) -> web.StreamResponse:
        body = await self._body(request)
        group, take = body.get("group"), body.get("take")
        if not isinstance(group, str) or not isinstance(take, int) or isinstance(take, bool):
            raise UsageError("expected {group: job id, take: number}")
        assets = await self._run(lambda: self.session.pick(group, take))
        return self._json({"assets": assets})

    async def _audio(self, request: web.Request) -> web.StreamResponse:
        job_id = request.query.get("id", "")
        view = await self._view(job_id)
        if view is None or view.play is None or not view.play.is_file():
            return web.json_response({"error": f"no audio for {job_id}"}, status=404)
        # FileResponse answers Range requests: seeking in the player needs them.
        return web.FileResponse(view.play, headers={"Cache-Control": "no-store"})


async def serve(review: ReviewApp, *, port: int = 0,
                ready: Callable[[str], None] | None = None,
                stop: asyncio.Event | None = None) -> None:
    """Serve on 127.0.0.1:`port` (0: a free port) until `stop` is set (or cancelled);
    `ready` gets the URL to open once the socket listens."""
    await asyncio.get_running_loop().run_in_executor(review.pools.work, review.session.prepare)
    runner = web.AppRunner(review.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, LOOPBACK, port, reuse_address=False)
    await site.start()
    try:
        review.port = int(runner.addresses[0][1])
        if ready is not None:
            ready(f"http://{LOOPBACK}:{review.port}/{review.token}/")
        with contextlib.suppress(asyncio.CancelledError):
            await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()
