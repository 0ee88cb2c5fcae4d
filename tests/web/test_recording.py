"""Recording survives the server: killed servers lose no acknowledged click, nothing is duplicated."""

import warnings
import json
import os
import signal
import subprocess
import sys
import time

import httpx

from annobc.data import EpisodeStore
from annobc.tasks import Session, frame_hash, replay
from annobc.web.app import create_app
from annobc.web.recorder import PHASE_OF_CATEGORY, Recorder, read_journal, record_from_journal

from .browser import free_port

with warnings.catch_warnings():  # newer Starlette prefers httpx2 for its test client; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient
TASK = "colored_dot_tracking"


def centre(rect):
    return (rect.x0 + rect.x1) // 2, (rect.y0 + rect.y1) // 2


def test_killed_server_loses_no_click_and_the_next_one_finalises(tmp_path):
    out = tmp_path / "human"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "annobc.cli.main", "serve", "--port", str(port),
                             "--out", str(out), "--tasks", TASK], stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/api/tasks", timeout=1.0)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        s = httpx.post(base + "/api/sessions", json={"task": TASK, "annotator": "kim"}).json()
        lay = Session(TASK, s["seed"]).layout
        clicks = [centre(lay.buttons["+Z"]), centre(lay.buttons["+Z"]),
                  (lay.canvas.x0 + 40, lay.canvas.y0 + 41), centre(lay.buttons["MIP"])]
        for k, (x, y) in enumerate(clicks):
            r = httpx.post(f"{base}/api/sessions/{s['session_id']}/click",
                           json={"x": x, "y": y, "step": k, "t_ms": 100.0 + k})
            assert r.status_code == 200
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # no shutdown handler runs
        proc.wait(10)
    assert not (out / "dataset.json").exists()
    header, journaled, closing = read_journal(out / "sessions" / "000000.jsonl")
    assert closing is None and [(c["x"], c["y"]) for c in journaled] == clicks

    app = create_app(out, [TASK], allowed_hosts=["testserver"])  # the next server
    try:
        assert app.state.web.recovered == [f"{TASK}-train-{s['seed']}"]
        rec = EpisodeStore(out).record(app.state.web.recovered[0])
        assert rec.clicks == clicks and not rec.done and rec.persona == "human:kim"
        assert [st.timestamp_ms for st in rec.steps] == [100.0, 101.0, 102.0, 103.0]
        assert [st.phase for st in rec.steps] == ["navigate", "navigate", "place", "inspect"]
        # New sessions continue the seed sequence; the recovered journal is closed.
        s2 = TestClient(app).post("/api/sessions", json={"task": TASK}).json()
        assert s2["seed"] == s["seed"] + 1 and s2["persona"] == "human:anonymous"
    finally:
        app.state.web.close()
    assert read_journal(out / "sessions" / "000000.jsonl")[2]["kind"] == "final"


def test_crash_between_append_and_final_line_does_not_duplicate(tmp_path):
    rec = Recorder(tmp_path / "h")
    live = rec.new_session("sid", TASK, "x")
    lay = live.session.layout
    for k, (x, y) in enumerate([centre(lay.buttons["+Z"]), centre(lay.buttons["DONE"])]):
        rec.click(live, x, y, 10.0 * k)
    assert live.finished and live.episode_id
    # Drop the final line: as if the server died right after writing the shard.
    lines = live.journal.read_text().splitlines()
    live.journal.write_text("\n".join(lines[:-1]) + "\n")
    again = Recorder(tmp_path / "h")
    assert again.recover() == [live.episode_id]
    assert len(EpisodeStore(tmp_path / "h")) == 1
    assert again.recover() == []


def test_a_torn_last_line_is_ignored(tmp_path):
    rec = Recorder(tmp_path / "h")
    live = rec.new_session("sid", TASK, "x")
    rec.click(live, 5, 5, 1.0)
    with open(live.journal, "a") as f:
        f.write('{"kind":"click","step":1,"x":12')  # killed mid-write
    header, clicks, closing = read_journal(live.journal)
    assert len(clicks) == 1 and closing is None
    r = record_from_journal(header, clicks)
    assert r.clicks == [(5, 5)]
    again = Recorder(tmp_path / "h")
    assert len(again.recover()) == 1  # cuts the torn line, then closes the journal
    assert read_journal(live.journal)[2]["kind"] == "final"
    assert again.recover() == []


def test_graceful_stop_finalises_open_sessions(tmp_path):
    app = create_app(tmp_path / "h", [TASK], allowed_hosts=["testserver"])
    with TestClient(app) as c:  # runs the lifespan: shutdown on exit
        s = c.post("/api/sessions", json={"task": TASK}).json()
        c.post(f"/api/sessions/{s['session_id']}/click", json={"x": 5, "y": 5, "step": 0})
        c.post("/api/sessions", json={"task": TASK})  # no clicks: discarded
    store = EpisodeStore(tmp_path / "h")
    assert len(store) == 1
    journals = sorted((tmp_path / "h" / "sessions").glob("*.jsonl"))
    assert [read_journal(p)[2]["kind"] for p in journals] == ["final", "discarded"]


def test_live_and_recovered_records_agree(tmp_path):
    """The record built click by click equals the one rebuilt from the journal."""
    rec = Recorder(tmp_path / "h")
    live = rec.new_session("sid", TASK, "x")
    lay = live.session.layout
    plan = [centre(lay.buttons["MIP"]), centre(lay.buttons["MIP"]), (lay.canvas.x0 + 3, lay.canvas.y0 + 70),
            centre(lay.buttons["UNDO"]), (150, 120), centre(lay.buttons["-Z"])]
    for k, (x, y) in enumerate(plan):
        rec.click(live, x, y, 5.0 * k)
    header, clicks, _ = read_journal(live.journal)
    rebuilt = record_from_journal(header, clicks)
    assert rebuilt.to_dict() == {**live.record.to_dict(), "score": rebuilt.score,
                                 "success": rebuilt.success, "done": rebuilt.done}
    assert [frame_hash(f) for f in replay(rebuilt)] == [frame_hash(f) for f in replay(live.record)]
    assert {st.phase for st in rebuilt.steps} <= set(PHASE_OF_CATEGORY.values())


def test_store_frames_materialises_what_the_person_saw(tmp_path):
    app = create_app(tmp_path / "h", [TASK], store_frames=True, allowed_hosts=["testserver"])
    c = TestClient(app)
    s = c.post("/api/sessions", json={"task": TASK}).json()
    lay = Session(TASK, s["seed"]).layout
    c.post(f"/api/sessions/{s['session_id']}/click", json={"x": 5, "y": 5, "step": 0})
    r = c.post(f"/api/sessions/{s['session_id']}/click",
               json={"x": centre(lay.buttons["DONE"])[0], "y": centre(lay.buttons["DONE"])[1], "step": 1})
    eid = r.json()["episode_id"]
    store = EpisodeStore(tmp_path / "h")
    assert store.meta(eid)["frames_stored"]
    from annobc.data import load_frames

    assert load_frames(store.root, eid).shape == (3, 128, 160, 3)
    assert c.get(f"/api/replay/out/{eid}/frame/2").status_code == 200
    app.state.web.close()
    assert json.loads((tmp_path / "h" / "dataset.json").read_text())["episodes"] == 1


def test_a_corrupt_journal_is_reported_and_the_rest_recovered(tmp_path, capsys):
    rec = Recorder(tmp_path / "h")
    bad = rec.new_session("a", TASK, "x")
    good = rec.new_session("b", TASK, "x")
    rec.click(bad, 5, 5, 1.0)
    rec.click(good, 5, 5, 1.0)
    with open(bad.journal, "a") as f:
        f.write("garbage\n")
        f.write('{"kind":"click","step":1,"x":5,"y":5,"timestamp_ms":2.0}\n')
    app = create_app(tmp_path / "h", [TASK], allowed_hosts=["testserver"])
    try:
        assert app.state.web.recovered == [f"{TASK}-train-{good.seed}"]
        assert len(app.state.web.recovery_errors) == 1 and "not JSON" in app.state.web.recovery_errors[0]
        assert "could not finalise" in capsys.readouterr().err
    finally:
        app.state.web.close()
