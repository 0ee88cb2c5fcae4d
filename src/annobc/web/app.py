"""The annotation web app (Starlette): task list, live sessions, replay of recorded episodes.

A session's screen is the frame the numpy renderer draws for the models, sent as a PNG at its
native size and shown by the page at an integer scale with nearest-neighbour upscaling; the page
maps a click back to the screen pixel floor(offset / scale) and posts it, and the server steps the
same :class:`annobc.tasks.Session` the envs use.

Routes (HTML): ``/`` tasks, ``/session/{sid}`` a session, ``/replay`` recorded episodes,
``/replay/{dataset}/{episode_id}`` the player. JSON API: ``GET /api/tasks``, ``POST /api/sessions``
``{"task", "annotator"}``, ``GET /api/sessions/{sid}``, ``POST /api/sessions/{sid}/click``
``{"x", "y", "step", "t_ms"}``, ``POST /api/sessions/{sid}/end``, ``GET /api/sessions/{sid}/frame.png``,
``GET /api/datasets``, ``GET /api/replay/{dataset}/{episode_id}``,
``GET /api/replay/{dataset}/{episode_id}/frame/{k}`` (PNG). Errors are ``{"error": "..."}`` with a
4xx status, and a rejected request changes nothing.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import html
import io
import json
import re
import secrets
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from annobc.data import EpisodeStore
from annobc.data.frames import load_frames
from annobc.data.store import CARD, DatasetError
from annobc.gui import DEFAULT_SCREEN, DEFAULT_VARIANT
from annobc.tasks.episode import replay_session
from annobc.tasks.registry import get_task_class, task_ids
from annobc.web.recorder import (DEFAULT_STEP_CAP, HUMAN_SEED_START, LiveSession, Recorder,
                                 annotator_name, finite_number)

MAX_BODY = 1024  # bytes of a JSON request body
MAX_SESSIONS = 256  # sessions kept in memory; finished ones are evicted first
MAX_OPEN_SESSIONS = 64  # unfinished sessions at once
CLOCK_SLACK_MS = 2000.0  # a client timestamp may run this far ahead of the server's clock
SID_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STATIC = {"app.js": "text/javascript", "replay.js": "text/javascript", "style.css": "text/css"}
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # session ids are in URLs
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy",
     b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
     b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"cache-control", b"no-store"),
]


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def png_bytes(frame: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def png_data_url(frame: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(frame)).decode()


# -- request validation ----------------------------------------------------------------------------
async def json_body(request: Request, allowed: set[str]) -> dict:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise HTTPError(415, "send the request body as application/json")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
        raise HTTPError(413, f"request body over {MAX_BODY} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise HTTPError(413, f"request body over {MAX_BODY} bytes")
    try:
        obj = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPError(400, "request body is not valid JSON") from None
    if not isinstance(obj, dict):
        raise HTTPError(400, "request body must be a JSON object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise HTTPError(400, f"unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    return obj


def int_field(obj: dict, name: str) -> int:
    v = obj.get(name)
    if v is None:
        raise HTTPError(400, f"missing field {name!r}")
    if isinstance(v, bool) or not isinstance(v, int):
        raise HTTPError(400, f"{name} must be an integer, got {json.dumps(v)[:40]}")
    return v


# -- replay sources ----------------------------------------------------------------------------------
@dataclass
class Source:
    """A dataset the replay pages can show, named by a server-side key."""

    key: str
    root: Path
    store: EpisodeStore | None = None
    stamp: int = -1

    def load(self) -> EpisodeStore | None:
        card = self.root / CARD
        try:
            stamp = card.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if self.store is None or stamp != self.stamp:
            self.store, self.stamp = EpisodeStore(self.root), stamp
        return self.store


class WebState:
    """Everything the app holds: the recorder, the live sessions, the replay sources."""

    def __init__(self, out: str | Path, tasks: Sequence[str] | None = None,
                 screen: tuple[int, int] = DEFAULT_SCREEN, theme: str | None = None,
                 scale: int = 4, step_cap: int = DEFAULT_STEP_CAP,
                 seed_start: int = HUMAN_SEED_START, split: str = "train",
                 replay_dirs: Sequence[str | Path] = (), store_frames: bool = False,
                 ui_variant: str = DEFAULT_VARIANT, params: dict[str, dict] | None = None):
        self.tasks = list(tasks) if tasks else task_ids()
        for t in self.tasks:
            get_task_class(t)
        for t in params or {}:
            if t not in self.tasks:
                raise ValueError(f"--param names {t}, which is not served (tasks: "
                                 f"{', '.join(self.tasks)})")
        if not 1 <= int(scale) <= 16:
            raise ValueError(f"scale must be an integer from 1 to 16, got {scale}")
        self.scale = int(scale)
        for d in replay_dirs:
            EpisodeStore(d)  # fail now, with the dataset's one-line error
        self.recorder = Recorder(out, screen, theme, step_cap, seed_start, split, store_frames,
                                 ui_variant, params)
        self._lockfile = open(self.recorder.journals / ".serve.lock", "w")
        try:
            fcntl.flock(self._lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lockfile.close()
            raise ValueError(f"another annobc serve is recording into {out}; use another --out") from None
        self.recovered, self.recovery_errors = self._recover()
        self.sessions: OrderedDict[str, LiveSession] = OrderedDict()
        self.lock = threading.Lock()
        self.sources: dict[str, Source] = {"out": Source("out", Path(out))}
        for i, d in enumerate(replay_dirs, 1):
            self.sources[f"d{i}"] = Source(f"d{i}", Path(d))
        self._replay_cache: OrderedDict[tuple[str, str], list] = OrderedDict()
        self._replay_lock = threading.Lock()
        self.closed = False

    def _recover(self) -> tuple[list[str], list[str]]:
        errors: list[str] = []
        ids = self.recorder.recover(errors)
        for e in errors:
            print(f"annobc serve: warning: could not finalise an unfinished session: {e}",
                  file=sys.stderr)
        return ids, errors

    # -- sessions ------------------------------------------------------------------------------------
    def create(self, task: Any, name: Any) -> LiveSession:
        if not isinstance(task, str) or task not in self.tasks:
            raise HTTPError(400, f"unknown task {json.dumps(task)[:60]}; tasks served: "
                                 f"{', '.join(self.tasks)}")
        if name is not None and not isinstance(name, str):
            raise HTTPError(400, "annotator must be a string")
        try:
            name = annotator_name(name)
        except ValueError as e:
            raise HTTPError(400, str(e)) from None
        with self.lock:
            if self.closed:
                raise HTTPError(503, "the server is shutting down")
            open_ = sum(not s.finished for s in self.sessions.values())
            if open_ >= MAX_OPEN_SESSIONS:
                raise HTTPError(503, f"{open_} sessions are open; end some first")
            while len(self.sessions) >= MAX_SESSIONS:
                old = next((k for k, s in self.sessions.items() if s.finished), None)
                if old is None:
                    raise HTTPError(503, "too many sessions")
                del self.sessions[old]
            sid = secrets.token_urlsafe(24)
            live = self.recorder.new_session(sid, task, name)
            self.sessions[sid] = live
        return live

    def get(self, sid: str) -> LiveSession:
        live = self.sessions.get(sid) if SID_RE.match(sid) else None
        if live is None:
            raise HTTPError(404, "unknown session")
        return live

    def click(self, live: LiveSession, body: dict) -> dict:
        x, y, step = int_field(body, "x"), int_field(body, "y"), int_field(body, "step")
        w, h = self.recorder.screen
        if not (0 <= x < w and 0 <= y < h):
            raise HTTPError(400, f"click ({x}, {y}) is outside the {w}x{h} screen")
        t = body.get("t_ms")
        with live.lock:
            if live.finished:
                raise HTTPError(409, "this session is finished")
            if step != live.steps:
                raise HTTPError(409, f"stale click: it was made on step {step}, the screen is at "
                                     f"step {live.steps}")
            last = live.record.steps[-1].timestamp_ms if live.record.steps else 0.0
            if t is None:
                t = live.elapsed_ms()
            elif not finite_number(t) or not (last <= t <= live.elapsed_ms() + CLOCK_SLACK_MS):
                raise HTTPError(400, f"t_ms must be a number of ms since the session's first frame, "
                                     f"not before the previous click ({last:.1f})")
            res = self.recorder.click(live, x, y, max(float(t), last))
            state = self.state(live)
        state["result"] = {"element": res.element, "category": res.category,
                           "annotated": res.effect.annotated}
        return state

    def end(self, live: LiveSession) -> dict:
        with live.lock:
            if not live.finished:
                self.recorder.finish(live, "ended")
            return self.state(live)

    def state(self, live: LiveSession, frame: bool = True) -> dict:
        cls = live.session.task_cls
        st = live.record.steps
        out = {"session_id": live.sid, "task": live.task_id, "instruction": cls.instruction,
               "seed": live.seed, "persona": live.persona, "width": self.recorder.screen[0],
               "height": self.recorder.screen[1], "scale": self.scale, "step": live.steps,
               "step_cap": live.step_cap, "done": live.session.done, "finished": live.finished,
               "end_reason": live.end_reason, "episode_id": live.episode_id,
               "ui_variant": live.record.ui_variant,
               "last_timestamp_ms": st[-1].timestamp_ms if st else 0.0}
        if live.finished:
            out["score"], out["success"] = live.record.score, live.record.success
        if frame:
            out["frame"] = png_data_url(live.session.render())
        return out

    def close(self) -> None:
        """Finish every open session (those with clicks become episodes) and release --out."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            sessions = list(self.sessions.values())
        for live in sessions:
            with live.lock:
                if not live.finished:
                    self.recorder.finish(live, "server stopped")
        fcntl.flock(self._lockfile, fcntl.LOCK_UN)
        self._lockfile.close()

    # -- replay --------------------------------------------------------------------------------------
    def store(self, key: str) -> EpisodeStore:
        src = self.sources.get(key)
        store = src.load() if src is not None else None
        if store is None:
            raise HTTPError(404, "unknown dataset")
        return store

    def episode(self, key: str, eid: str) -> tuple[EpisodeStore, str]:
        store = self.store(key)
        i = store.index.get(eid)
        if i is None:
            raise HTTPError(404, "unknown episode")
        return store, store.episodes["episode_id"][i]  # the store's own id string from here on

    def replay_frame(self, key: str, eid: str, k: int) -> bytes:
        store, eid = self.episode(key, eid)
        meta = store.meta(eid)
        n = int(meta["length"])
        if not 0 <= k <= n:
            raise HTTPError(404, f"episode {eid} has frames 0..{n}")
        if meta["frames_stored"]:
            return png_bytes(np.asarray(load_frames(store.root, eid)[k]))
        with self._replay_lock:
            ck = (key, eid)
            entry = self._replay_cache.pop(ck, None)
            if entry is None or entry[1] > k or entry[2] is not store:
                entry = [replay_session(store.record(eid)), 0, store]
            session, at = entry[0], entry[1]
            xs, ys = store.steps(eid)["x"], store.steps(eid)["y"]
            for j in range(at, k):
                session.step(int(xs[j]), int(ys[j]))
            entry[1] = k
            frame = session.render()
            self._replay_cache[ck] = entry
            while len(self._replay_cache) > 8:
                self._replay_cache.popitem(last=False)
        return png_bytes(frame)


# -- pages -------------------------------------------------------------------------------------------
def page(title: str, body: str, script: str | None = None, main_attrs: str = "") -> HTMLResponse:
    js = f'<script src="/static/{script}" defer></script>' if script else ""
    return HTMLResponse(
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
        f'<title>{html.escape(title)} - annobc</title><link rel="stylesheet" href="/static/style.css">'
        f'{js}</head><body><main{main_attrs}>{body}</main></body></html>')


def error_page(status: int, message: str) -> HTMLResponse:
    r = page("Error", f'<h1>{status}</h1><p>{html.escape(message)}</p><p><a href="/">Tasks</a></p>')
    r.status_code = status
    return r


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def create_app(out: str | Path, tasks: Sequence[str] | None = None,
               screen: tuple[int, int] = DEFAULT_SCREEN, theme: str | None = None,
               scale: int = 4, step_cap: int = DEFAULT_STEP_CAP, seed_start: int = HUMAN_SEED_START,
               split: str = "train", replay_dirs: Sequence[str | Path] = (),
               store_frames: bool = False, allowed_hosts: Sequence[str] | None = None,
               ui_variant: str = DEFAULT_VARIANT, params: dict[str, dict] | None = None
               ) -> Starlette:
    """The app. ``allowed_hosts``: Host headers accepted (default: loopback names only, which also
    stops DNS-rebinding pages from reaching the server; ``["*"]`` for any). ``ui_variant``: the
    GUI variant every session is shown in; ``theme`` (None: the variant's) overrides its theme.
    ``params``: {task: {name: value}}, task parameters other than the defaults (``--param``)."""
    web = WebState(out, tasks, screen, theme, scale, step_cap, seed_start, split, replay_dirs,
                   store_frames, ui_variant, params)

    def api(handler):
        async def endpoint(request: Request):
            try:
                return await handler(request)
            except HTTPError as e:
                if wants_json(request):
                    return JSONResponse({"error": e.message}, status_code=e.status)
                return error_page(e.status, e.message)
            except DatasetError as e:
                return JSONResponse({"error": str(e)}, status_code=500)
        return endpoint

    # -- HTML ----------------------------------------------------------------------------------------
    async def index(request: Request):
        rows = []
        for t in web.tasks:
            cls = get_task_class(t)
            rows.append(f'<li><button type="button" class="start" data-task="{html.escape(t)}">'
                        f'{html.escape(t)}</button> <span>{html.escape(cls.instruction)}</span></li>')
        w, h = web.recorder.screen
        body = (f'<h1>annobc: annotate</h1>'
                f'<p>Pick a task. The screen is the same {w}x{h} image the models see, shown '
                f'{web.scale}x larger; click on it as you would in the real tool, and press the '
                f'DONE button on the screen when you are finished. Every click is recorded.</p>'
                f'<p><label for="annotator">Your name (a-z, 0-9, _ or -; empty: anonymous)</label> '
                f'<input id="annotator" name="annotator" maxlength="32" pattern="[a-z0-9_\\-]*" '
                f'autocomplete="off"></p><ul class="tasks">{"".join(rows)}</ul>'
                f'<p id="error" role="alert"></p><p><a href="/replay">Replay recorded episodes</a></p>')
        return page("Tasks", body, "app.js", ' data-page="index"')

    async def session_page(request: Request):
        live = web.get(request.path_params["sid"])
        cls = live.session.task_cls
        w, h = web.recorder.screen
        body = (f'<h1>{html.escape(live.task_id)}</h1>'
                f'<p class="instruction">{html.escape(cls.instruction)}</p>'
                f'<img id="screen" alt="annotation screen: click to act" width="{w * web.scale}" '
                f'height="{h * web.scale}" draggable="false">'
                f'<p id="status" aria-live="polite">Loading...</p>'
                f'<p><button type="button" id="end">End session without DONE</button> '
                f'<a href="/">Tasks</a></p>')
        attrs = (f' data-page="session" data-sid="{html.escape(live.sid)}" data-width="{w}" '
                 f'data-height="{h}" data-scale="{web.scale}"')
        return page(live.task_id, body, "app.js", attrs)

    async def replay_index(request: Request):
        parts = ['<h1>Recorded episodes</h1><p><a href="/">Tasks</a></p>']
        for key, src in web.sources.items():
            store = await run_in_threadpool(src.load)
            name = html.escape(src.root.name or str(src.root))
            if store is None or not len(store):
                parts.append(f'<h2>{name}</h2><p>No episodes yet.</p>')
                continue
            parts.append(f'<h2>{name} ({len(store)} episodes)</h2><table><thead><tr><th>episode</th>'
                         f'<th>persona</th><th>clicks</th><th>score</th><th>DONE</th></tr></thead><tbody>')
            e = store.episodes
            for i in range(min(len(store), 500)):
                eid = html.escape(e["episode_id"][i])
                parts.append(f'<tr><td><a href="/replay/{key}/{eid}">{eid}</a></td>'
                             f'<td>{html.escape(e["persona"][i])}</td><td>{e["length"][i]}</td>'
                             f'<td>{e["score"][i]:.3f}</td><td>{"yes" if e["done"][i] else "no"}</td></tr>')
            parts.append("</tbody></table>")
            if len(store) > 500:
                parts.append(f"<p>... and {len(store) - 500} more (open /replay/{key}/EPISODE_ID).</p>")
        return page("Replay", "".join(parts))

    async def replay_page(request: Request):
        key = request.path_params["ds"]
        store, eid = await run_in_threadpool(web.episode, key, request.path_params["eid"])
        meta = store.meta(eid)
        w, h = int(meta["screen_w"]), int(meta["screen_h"])
        n = int(meta["length"])
        body = (f'<h1>Replay: {html.escape(eid)}</h1>'
                f'<p>{html.escape(meta["task_id"])}, {html.escape(meta["persona"])}, seed {meta["seed"]}, '
                f'{n} clicks, score {meta["score"]:.3f}, {"ended with DONE" if meta["done"] else "no DONE"}</p>'
                f'<div class="stage"><img id="screen" alt="recorded screen" width="{w * web.scale}" '
                f'height="{h * web.scale}"><div id="marker" hidden></div></div>'
                f'<p class="controls"><button type="button" id="first">First</button> '
                f'<button type="button" id="prev">Previous</button> '
                f'<button type="button" id="play">Play</button> '
                f'<button type="button" id="next">Next</button> '
                f'<button type="button" id="last">Last</button> '
                f'<label>step <input type="range" id="slider" min="0" max="{n}" value="0"></label></p>'
                f'<p id="status" aria-live="polite"></p><p><a href="/replay">All episodes</a></p>')
        attrs = (f' data-page="replay" data-ds="{html.escape(key)}" data-eid="{html.escape(eid)}" '
                 f'data-width="{w}" data-height="{h}" data-scale="{web.scale}" data-n="{n}"')
        return page(f"Replay {eid}", body, "replay.js", attrs)

    async def static(request: Request):
        name = request.path_params["name"]
        if name not in STATIC:
            raise HTTPError(404, "not found")
        data = resources.files("annobc.web").joinpath("static", name).read_bytes()
        return Response(data, media_type=STATIC[name])

    # -- JSON ----------------------------------------------------------------------------------------
    async def api_tasks(request: Request):
        return JSONResponse([{"task": t, "instruction": get_task_class(t).instruction,
                              "buttons": [b.label for b in get_task_class(t).buttons]}
                             for t in web.tasks])

    async def api_create(request: Request):
        body = await json_body(request, {"task", "annotator"})
        live = await run_in_threadpool(web.create, body.get("task"), body.get("annotator"))
        state = await run_in_threadpool(web.state, live)
        return JSONResponse(state, status_code=201)

    async def api_state(request: Request):
        live = web.get(request.path_params["sid"])
        return JSONResponse(await run_in_threadpool(lambda: _locked(live, web.state)))

    async def api_click(request: Request):
        live = web.get(request.path_params["sid"])
        body = await json_body(request, {"x", "y", "step", "t_ms"})
        return JSONResponse(await run_in_threadpool(web.click, live, body))

    async def api_end(request: Request):
        live = web.get(request.path_params["sid"])
        await json_body(request, set())
        return JSONResponse(await run_in_threadpool(web.end, live))

    async def api_frame(request: Request):
        live = web.get(request.path_params["sid"])
        data = await run_in_threadpool(lambda: _locked(live, lambda l: png_bytes(l.session.render())))
        return Response(data, media_type="image/png")

    async def api_datasets(request: Request):
        out = []
        for key, src in web.sources.items():
            store = await run_in_threadpool(src.load)
            out.append({"key": key, "name": src.root.name, "episodes": len(store) if store else 0})
        return JSONResponse(out)

    async def api_episode(request: Request):
        store, eid = await run_in_threadpool(web.episode, request.path_params["ds"],
                                             request.path_params["eid"])
        meta = store.meta(eid)
        st = store.steps(eid)
        steps = [{"x": int(st["x"][k]), "y": int(st["y"][k]), "element": st["element"][k],
                  "category": st["category"][k],
                  "timestamp_ms": None if st["timestamp_ms"][k] is None
                  or np.isnan(st["timestamp_ms"][k]) else float(st["timestamp_ms"][k])}
                 for k in range(int(meta["length"]))]
        m = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in meta.items()}
        return JSONResponse({"episode": m, "steps": steps})

    async def api_replay_frame(request: Request):
        k = request.path_params["k"]
        data = await run_in_threadpool(web.replay_frame, request.path_params["ds"],
                                       request.path_params["eid"], k)
        return Response(data, media_type="image/png")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        await run_in_threadpool(web.close)

    routes = [
        Route("/", api(index)),
        Route("/session/{sid}", api(session_page)),
        Route("/replay", api(replay_index)),
        Route("/replay/{ds}/{eid}", api(replay_page)),
        Route("/static/{name}", api(static)),
        Route("/api/tasks", api(api_tasks)),
        Route("/api/sessions", api(api_create), methods=["POST"]),
        Route("/api/sessions/{sid}", api(api_state)),
        Route("/api/sessions/{sid}/click", api(api_click), methods=["POST"]),
        Route("/api/sessions/{sid}/end", api(api_end), methods=["POST"]),
        Route("/api/sessions/{sid}/frame.png", api(api_frame)),
        Route("/api/datasets", api(api_datasets)),
        Route("/api/replay/{ds}/{eid}", api(api_episode)),
        Route("/api/replay/{ds}/{eid}/frame/{k:int}", api(api_replay_frame)),
    ]
    hosts = list(allowed_hosts) if allowed_hosts is not None else list(LOOPBACK_HOSTS)

    async def not_found(request: Request, exc):
        status = getattr(exc, "status_code", 404)
        msg = getattr(exc, "detail", "not found") or "not found"
        if wants_json(request):
            return JSONResponse({"error": msg}, status_code=status)
        return error_page(status, msg)

    app = Starlette(routes=routes, lifespan=lifespan,
                    middleware=[Middleware(SecurityHeaders),
                                Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
                    exception_handlers={404: not_found, 405: not_found})
    app.state.web = web
    return app


def _locked(live: LiveSession, fn):
    with live.lock:
        return fn(live)


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")
