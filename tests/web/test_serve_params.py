"""annobc serve --param: sessions of imported instances (or any non-default task parameters),
recorded so that their episodes replay."""

import json
import sys
import types
import warnings

import numpy as np
import pytest

from annobc.cli.main import main
from annobc.data import EpisodeStore
from annobc.tasks import Session, frame_hash, replay
from annobc.tasks.base import params_to_dict
from annobc.tasks.instances import load_instance
from annobc.web.recorder import read_journal, record_from_journal
from tests.importers.conftest import (R_NEIGHBOUR, R_TARGET, neuron_paths, neuron_volume,
                                      tifffile, write_swc)

from .test_api import centre, decode

with warnings.catch_warnings():  # newer Starlette prefers httpx2 for its test client; httpx works
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient

TASK = "neuron_tracking"


@pytest.fixture
def imported(tmp_path):
    from annobc.importers import import_neuron

    tifffile.imwrite(tmp_path / "stack.tif", neuron_volume())
    target, neighbour = neuron_paths()
    swcs = [write_swc(tmp_path / "target.swc", target, R_TARGET, branch_at=30),
            write_swc(tmp_path / "neighbour.swc", neighbour, R_NEIGHBOUR)]
    import_neuron(tmp_path / "stack.tif", swcs, tmp_path / "imp", max_slices=12)
    return tmp_path / "imp"


def serve(monkeypatch, argv, play) -> int:
    """``annobc serve ARGV`` with uvicorn replaced by ``play(client, app)``."""
    def run(app, **kw):
        play(TestClient(app, base_url="http://127.0.0.1:8000"), app)  # a loopback Host

    monkeypatch.setitem(sys.modules, "uvicorn", types.SimpleNamespace(run=run))
    return main(["serve", *argv])


def test_a_served_session_plays_the_imported_instance(monkeypatch, tmp_path, imported):
    out = tmp_path / "human"
    monkeypatch.chdir(imported.parent)  # a relative --param path, recorded absolute
    imported = imported.resolve()
    params = {"instance": str(imported)}
    seen = {}

    def play(client, app):
        r = client.post("/api/sessions", json={"task": TASK, "annotator": "ann"})
        assert r.status_code == 201, r.text
        s = r.json()
        seed = s["seed"]
        ref = Session(TASK, seed, params)
        shown = [decode(s["frame"])]
        assert np.array_equal(shown[0], ref.render())
        assert not np.array_equal(shown[0], Session(TASK, seed).render())  # not the generated one
        # The session's scene is the instance the seed picks: its slices, on the task's grid.
        task = app.state.web.get(s["session_id"]).session.task
        images = load_instance(str(imported), seed, TASK)["images"]
        assert task.n_slices == len(images)
        for z in (0, len(images) - 1):
            assert np.array_equal(task.render_view(z), np.repeat(images[z][:, :, None], 3, axis=2))
        lay = ref.layout
        plan = [(lay.canvas.x0 + 40, lay.canvas.y0 + 40), centre(lay.buttons["+Z"]),
                centre(lay.buttons["DONE"])]
        for k, (x, y) in enumerate(plan):
            r = client.post(f"/api/sessions/{s['session_id']}/click",
                            json={"x": x, "y": y, "step": k, "t_ms": 10.0 * (k + 1)})
            assert r.status_code == 200, r.text
            shown.append(decode(r.json()["frame"]))
        assert r.json()["finished"]
        seen.update(eid=r.json()["episode_id"], shown=shown, seed=seed)

    assert serve(monkeypatch, ["--out", str(out), "--tasks", TASK,
                               "--param", f"{TASK}.instance=imp"], play) == 0
    # The episode (and its journal) carry the parameters, so it replays the instance's frames.
    rec = EpisodeStore(out).record(seen["eid"])
    assert rec.params["instance"] == str(imported) and rec.seed == seen["seed"]
    hashes = [frame_hash(f) for f in seen["shown"]]
    assert [frame_hash(f) for f in replay(rec)] == hashes
    header, clicks, closing = read_journal(next((out / "sessions").glob("*.jsonl")))
    assert header["params"]["instance"] == str(imported) and closing["kind"] == "final"
    assert [frame_hash(f) for f in replay(record_from_journal(header, clicks))] == hashes


def test_other_tasks_keep_their_defaults(monkeypatch, tmp_path, imported):
    def play(client, app):
        s = client.post("/api/sessions", json={"task": "colored_dot_tracking"}).json()
        assert np.array_equal(decode(s["frame"]), Session("colored_dot_tracking", s["seed"]).render())
        rec = app.state.web.get(s["session_id"]).record
        assert rec.params == params_to_dict(Session("colored_dot_tracking", 0).task.params)

    assert serve(monkeypatch, ["--out", str(tmp_path / "h"), "--tasks", f"{TASK},colored_dot_tracking",
                               "--param", f"{TASK}.instance={imported}"], play) == 0


@pytest.mark.parametrize("param, words", [
    ("neuron_tracking.instance={tmp}/nope", "no instance file or import folder"),
    ("cell_lineage_tracking.instance={tmp}", "not served"),
    ("neuron_tracking.no_such=1", "no_such"),
    ("neuron_tracking", "TASK.NAME=VALUE"),
])
def test_bad_params_fail_at_start_in_one_line(monkeypatch, tmp_path, capsys, param, words):
    def play(client, app):
        raise AssertionError("served")

    argv = ["--out", str(tmp_path / "h"), "--tasks", TASK, "--param", param.format(tmp=tmp_path)]
    assert serve(monkeypatch, argv, play) == 2
    assert not (tmp_path / "h").exists()  # nothing written
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("annobc serve: error:") and words in err[0], err
