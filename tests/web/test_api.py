"""The web app through Starlette's test client: sessions, recording, replay, and bad input."""

import warnings
import io
import json

import numpy as np
import pytest
from PIL import Image

from annobc.data import EpisodeStore
from annobc.tasks import PHASES, Session, frame_hash, replay
from annobc.web.app import create_app

with warnings.catch_warnings():  # newer Starlette prefers httpx2 for its test client; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

TASK = "colored_dot_tracking"


def decode(data_url_or_bytes) -> np.ndarray:
    if isinstance(data_url_or_bytes, str):
        import base64

        assert data_url_or_bytes.startswith("data:image/png;base64,")
        data_url_or_bytes = base64.b64decode(data_url_or_bytes.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data_url_or_bytes)).convert("RGB"))


@pytest.fixture
def app(tmp_path):
    a = create_app(tmp_path / "human", [TASK, "neuron_tracking"], allowed_hosts=["testserver"])
    yield a
    a.state.web.close()


@pytest.fixture
def client(app):
    return TestClient(app)


def start(client, task=TASK, name="tester"):
    r = client.post("/api/sessions", json={"task": task, "annotator": name})
    assert r.status_code == 201, r.text
    return r.json()


def centre(rect):
    return (rect.x0 + rect.x1) // 2, (rect.y0 + rect.y1) // 2


def click(client, s, x, y, step, **extra):
    return client.post(f"/api/sessions/{s['session_id']}/click", json={"x": x, "y": y, "step": step,
                                                                       **extra})


def journal_lines(app) -> int:
    return sum(len(p.read_text().splitlines()) for p in app.state.web.recorder.journals.glob("*.jsonl"))


def test_index_lists_served_tasks_with_instructions(client):
    r = client.get("/")
    assert r.status_code == 200
    assert "colored_dot_tracking" in r.text and "neuron_tracking" in r.text
    assert "brightest" in r.text  # colored_dot_tracking's instruction
    assert "cell_lineage_tracking" not in r.text  # not served
    tasks = client.get("/api/tasks").json()
    assert [t["task"] for t in tasks] == [TASK, "neuron_tracking"]
    for name in ("app.js", "replay.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "pixelated" in client.get("/static/style.css").text


def test_session_shows_the_models_frame_and_steps_the_same_env(client, app):
    s = start(client)
    assert s["seed"] >= 30_000_000 and s["persona"] == "human:tester"
    ref = Session(TASK, s["seed"])
    assert np.array_equal(decode(s["frame"]), ref.render())
    page = client.get(f"/session/{s['session_id']}")
    assert page.status_code == 200 and 'data-scale="4"' in page.text
    lay = ref.layout
    clicks = [centre(lay.buttons["+Z"]), centre(lay.buttons["+Z"]), centre(lay.buttons["MIP"]),
              (lay.canvas.x0 + 30, lay.canvas.y0 + 40), (2, lay.height - 2)]
    for k, (x, y) in enumerate(clicks):
        r = click(client, s, x, y, k, t_ms=100.0 * (k + 1))
        assert r.status_code == 200, r.text
        res = ref.step(x, y)
        body = r.json()
        assert body["step"] == k + 1
        assert body["result"]["element"] == res.element and body["result"]["category"] == res.category
        assert np.array_equal(decode(body["frame"]), ref.render())
    png = client.get(f"/api/sessions/{s['session_id']}/frame.png")
    assert png.headers["content-type"] == "image/png"
    assert np.array_equal(decode(png.content), ref.render())


def test_done_records_a_replayable_episode_in_the_dataset(client, app, tmp_path, capsys):
    s = start(client, name="ann_1")
    lay = Session(TASK, s["seed"]).layout
    shown = [decode(s["frame"])]
    plan = [centre(lay.buttons["+Z"]), (lay.canvas.x0 + 50, lay.canvas.y0 + 50),
            centre(lay.buttons["UNDO"]), centre(lay.buttons["-Z"]), centre(lay.buttons["DONE"])]
    for k, (x, y) in enumerate(plan):
        r = click(client, s, x, y, k)  # no t_ms: the server's clock is used
        assert r.status_code == 200
        shown.append(decode(r.json()["frame"]))
    end = r.json()
    assert end["finished"] and end["done"] and end["end_reason"] == "done"
    eid = end["episode_id"]
    assert eid == f"{TASK}-train-{s['seed']}"
    store = EpisodeStore(tmp_path / "human")
    rec = store.record(eid)
    assert rec.persona == "human:ann_1" and rec.done and rec.clicks == plan
    ts = [st.timestamp_ms for st in rec.steps]
    assert all(t is not None for t in ts) and ts == sorted(ts)
    assert [st.phase for st in rec.steps] == ["navigate", "place", "correct", "navigate", "finish"]
    assert all(st.phase in PHASES and st.target == -1 for st in rec.steps)
    assert [frame_hash(f) for f in replay(rec)] == [frame_hash(f) for f in shown]
    # Finished: further clicks are refused.
    assert click(client, s, 5, 5, len(plan)).status_code == 409
    # `annobc stats` reads it like any other dataset.
    from annobc.cli.main import main

    assert main(["stats", str(tmp_path / "human")]) == 0
    assert TASK in capsys.readouterr().out
    # The journal is closed.
    last = json.loads(app.state.web.recorder.journals.joinpath("000000.jsonl").read_text()
                      .splitlines()[-1])
    assert last == {"kind": "final", "episode_id": eid, "length": 5, "done": True, "score": 0.0}


def test_human_episodes_feed_the_training_loader(client, tmp_path):
    pytest.importorskip("torch")
    from annobc.data.windows import WindowDataset

    s = start(client)
    lay = Session(TASK, s["seed"]).layout
    for k, (x, y) in enumerate([centre(lay.buttons["MIP"]), (lay.canvas.x0 + 9, lay.canvas.y0 + 9),
                                centre(lay.buttons["DONE"])]):
        assert click(client, s, x, y, k).status_code == 200
    ds = WindowDataset(tmp_path / "human", "train", window=4)
    samples = list(ds)
    assert len(samples) == 3 and samples[0]["frames"].shape == (4, 128, 160, 3)


BAD_CLICKS = [
    # (body or raw bytes, content type, expected status, words in the error)
    ({"x": 160, "y": 5, "step": 0}, "application/json", 400, "outside"),
    ({"x": -1, "y": 5, "step": 0}, "application/json", 400, "outside"),
    ({"x": 5, "y": 128, "step": 0}, "application/json", 400, "outside"),
    ({"x": 5.5, "y": 5, "step": 0}, "application/json", 400, "integer"),
    ({"x": "5", "y": 5, "step": 0}, "application/json", 400, "integer"),
    ({"x": True, "y": 5, "step": 0}, "application/json", 400, "integer"),
    ({"y": 5, "step": 0}, "application/json", 400, "missing"),
    ({"x": 5, "y": 5}, "application/json", 400, "missing"),
    ({"x": 5, "y": 5, "step": 0, "path": "../../etc"}, "application/json", 400, "unknown field"),
    ({"x": 5, "y": 5, "step": 3}, "application/json", 409, "stale"),
    ({"x": 5, "y": 5, "step": 0, "t_ms": -5}, "application/json", 400, "t_ms"),
    ({"x": 5, "y": 5, "step": 0, "t_ms": "soon"}, "application/json", 400, "t_ms"),
    ({"x": 5, "y": 5, "step": 0, "t_ms": 1e12}, "application/json", 400, "t_ms"),
    (b"[1, 2]", "application/json", 400, "object"),
    (b"{x: 1", "application/json", 400, "JSON"),
    (b"x=5&y=5&step=0", "application/x-www-form-urlencoded", 415, "application/json"),
    (b"{}" + b" " * 5000, "application/json", 413, "bytes"),
]


@pytest.mark.parametrize("body,ctype,status,words", BAD_CLICKS)
def test_bad_clicks_are_4xx_and_change_nothing(client, app, body, ctype, status, words):
    s = start(client)
    sid = s["session_id"]
    ok = click(client, s, 5, 5, 0, t_ms=50.0)  # one good click first, so step is 1
    assert ok.status_code == 200
    if isinstance(body, dict) and "step" in body and body["step"] == 0:
        body = {**body, "step": 1}
    before = (journal_lines(app), client.get(f"/api/sessions/{sid}").json())
    raw = json.dumps(body).encode() if isinstance(body, dict) else body
    r = client.post(f"/api/sessions/{sid}/click", content=raw, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]
    after = (journal_lines(app), client.get(f"/api/sessions/{sid}").json())
    assert after == before


def test_timestamps_must_not_go_backwards(client):
    s = start(client)
    assert click(client, s, 5, 5, 0, t_ms=300.0).status_code == 200
    r = click(client, s, 5, 5, 1, t_ms=200.0)
    assert r.status_code == 400 and "previous click" in r.json()["error"]
    assert click(client, s, 5, 5, 1, t_ms=300.0).status_code == 200


@pytest.mark.parametrize("body,status,words", [
    ({"task": "no_such_task"}, 400, "unknown task"),
    ({"task": "cell_lineage_tracking"}, 400, "unknown task"),  # a real task, not served
    ({"task": ["colored_dot_tracking"]}, 400, "unknown task"),
    ({}, 400, "unknown task"),
    ({"task": TASK, "annotator": "../../etc/passwd"}, 400, "annotator name"),
    ({"task": TASK, "annotator": "Alice"}, 400, "annotator name"),
    ({"task": TASK, "annotator": "a" * 33}, 400, "annotator name"),
    ({"task": TASK, "annotator": 7}, 400, "annotator"),
    ({"task": TASK, "seed": 3}, 400, "unknown field"),
])
def test_bad_session_requests_create_nothing(client, app, body, status, words):
    r = client.post("/api/sessions", json=body)
    assert r.status_code == status and words in r.json()["error"]
    assert not app.state.web.sessions and journal_lines(app) == 0


def test_unknown_sessions_routes_and_hosts(client, app):
    s = start(client)
    for url in ("/api/sessions/nope", "/api/sessions/" + "A" * 32, "/api/sessions/a%2F..%2Fb"):
        r = client.get(url)
        assert r.status_code == 404 and "error" in r.json()
    assert client.get("/api/sessions/../../x").status_code == 404
    r = client.post("/api/sessions/" + "A" * 32 + "/click", json={"x": 1, "y": 1, "step": 0})
    assert r.status_code == 404 and r.json()["error"] == "unknown session"
    assert client.get("/session/" + "B" * 32).status_code == 404
    assert client.get("/api/nothing").json() == {"error": "Not Found"}
    assert client.get("/static/../recorder.py").status_code == 404
    assert client.get("/static/recorder.py").status_code == 404
    assert client.get(f"/api/sessions/{s['session_id']}/click").status_code == 405
    # Only the allowed Host names are served (DNS rebinding).
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400


def test_default_hosts_are_loopback_only(tmp_path):
    app = create_app(tmp_path / "h", [TASK])
    try:
        c = TestClient(app, base_url="http://127.0.0.1:8000")
        assert c.get("/").status_code == 200
        assert TestClient(app, base_url="http://localhost").get("/").status_code == 200
        assert TestClient(app).get("/").status_code == 400  # Host: testserver
    finally:
        app.state.web.close()


def test_session_ids_are_unguessable_and_headers_safe(client):
    ids = {start(client)["session_id"] for _ in range(20)}
    assert len(ids) == 20 and all(len(i) >= 32 for i in ids)
    r = client.get("/")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer"


def test_end_without_done_and_empty_sessions(client, app, tmp_path):
    empty = start(client)
    r = client.post(f"/api/sessions/{empty['session_id']}/end", json={})
    assert r.status_code == 200 and r.json()["finished"] and r.json()["episode_id"] is None
    assert not (tmp_path / "human" / "dataset.json").exists()  # nothing saved for no clicks
    s = start(client)
    assert click(client, s, *centre(Session(TASK, s["seed"]).layout.buttons["+Z"]), 0).status_code == 200
    r = client.post(f"/api/sessions/{s['session_id']}/end", json={})
    assert r.json()["episode_id"] and r.json()["end_reason"] == "ended"
    assert client.post(f"/api/sessions/{s['session_id']}/end", json={}).json() == r.json()  # idempotent
    rec = EpisodeStore(tmp_path / "human").record(r.json()["episode_id"])
    assert len(rec) == 1 and not rec.done
    assert client.post(f"/api/sessions/{s['session_id']}/end", json={"x": 1}).status_code == 400


def test_step_cap_ends_the_session(tmp_path):
    app = create_app(tmp_path / "h", [TASK], step_cap=3, allowed_hosts=["testserver"])
    c = TestClient(app)
    s = start(c)
    for k in range(3):
        r = click(c, s, 5, 5, k)
    assert r.json()["finished"] and r.json()["end_reason"] == "step cap" and not r.json()["done"]
    assert click(c, s, 5, 5, 3).status_code == 409
    assert len(EpisodeStore(tmp_path / "h").record(r.json()["episode_id"])) == 3
    app.state.web.close()


def test_one_server_per_out_folder(tmp_path, app):
    with pytest.raises(ValueError, match="another annobc serve"):
        create_app(tmp_path / "human", [TASK])


def test_replay_api_serves_the_recorded_frames(client, tmp_path):
    s = start(client)
    lay = Session(TASK, s["seed"]).layout
    for k, (x, y) in enumerate([centre(lay.buttons["+Z"]), (lay.canvas.x0 + 20, lay.canvas.y0 + 33),
                                centre(lay.buttons["DONE"])]):
        r = click(client, s, x, y, k, t_ms=10.0 * (k + 1))
    eid = r.json()["episode_id"]
    ep = client.get(f"/api/replay/out/{eid}").json()
    assert [st["timestamp_ms"] for st in ep["steps"]] == [10.0, 20.0, 30.0]
    assert ep["episode"]["persona"] == "human:tester"
    rec = EpisodeStore(tmp_path / "human").record(eid)
    frames = list(replay(rec))
    for k in (2, 0, 1, 3):  # out of order: the cached replay session rewinds
        png = client.get(f"/api/replay/out/{eid}/frame/{k}")
        assert png.status_code == 200 and np.array_equal(decode(png.content), frames[k])
    assert client.get(f"/replay/out/{eid}").status_code == 200
    assert eid in client.get("/replay").text
    assert client.get("/api/datasets").json() == [{"key": "out", "name": "human", "episodes": 1}]
    for url in (f"/api/replay/out/{eid}/frame/4", f"/api/replay/out/{eid}/frame/-1",
                f"/api/replay/zz/{eid}", "/api/replay/out/nope", "/api/replay/out/..%2F..%2Fx",
                f"/replay/d1/{eid}"):
        assert client.get(url).status_code == 404, url
