"""`annobc compare` (the human-study table) and the `serve` / `compare` command lines."""

import json

import pytest

from annobc.cli.main import main
from annobc.data import append_episodes
from annobc.tasks import run_annotator
from annobc.web.compare import compare, format_table
from annobc.web.recorder import Recorder

TASK = "colored_dot_tracking"


def centre(rect):
    return (rect.x0 + rect.x1) // 2, (rect.y0 + rect.y1) // 2


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    va = root / "va"
    recs = [run_annotator(TASK, s) for s in range(3)]
    append_episodes(va, recs, ["train"] * 3)
    human = root / "human"
    rec = Recorder(human)
    # Session 1: +Z +Z place UNDO place DONE at known times.
    live = rec.new_session("a", TASK, "ann")
    lay = live.session.layout
    pz, undo, done = centre(lay.buttons["+Z"]), centre(lay.buttons["UNDO"]), centre(lay.buttons["DONE"])
    canvas = (lay.canvas.x0 + 30, lay.canvas.y0 + 30)
    for (x, y), t in zip([pz, pz, canvas, undo, canvas, done], [400, 700, 1700, 2500, 3100, 5100]):
        rec.click(live, x, y, t)
    # Session 2: +Z, then ended without DONE.
    live2 = rec.new_session("b", TASK, "bo")
    rec.click(live2, *pz, 300)
    rec.finish(live2, "ended")
    return va, human, recs


def test_compare_figures(datasets):
    va, human, recs = datasets
    res = compare([human, va])
    h = res["tasks"][TASK]["human"]
    assert h["episodes"] == 2 and h["clicks"] == 7
    assert h["action_mix"]["navigate"] == pytest.approx(3 / 7)
    assert h["action_mix"]["place"] == pytest.approx(2 / 7)
    assert h["nav_to_place"] == pytest.approx(1.5)
    assert h["correction_rate"] == pytest.approx(1 / 3)
    assert h["completion"] == 0.5 and h["clicks_per_episode"] == 3.5
    # Reaction times: differences of consecutive timestamps (first from the first frame).
    assert h["median_rt_ms"]["navigate"] == 300.0  # 400, 300 and 300
    assert h["median_rt_ms"]["place"] == pytest.approx((1000 + 600) / 2)
    assert h["median_rt_ms"]["undo"] == 800.0 and h["median_rt_ms"]["done"] == 2000.0
    v = res["tasks"][TASK]["va"]
    assert v["episodes"] == 3 and v["timestamped_clicks"] == 0 and v["median_rt_ms"] == {}
    assert v["clicks_per_episode"] == pytest.approx(sum(len(r) for r in recs) / 3)
    assert v["completion"] == 1.0
    per = compare([human], by_persona=True)["tasks"][TASK]
    assert set(per) == {"human/human:ann", "human/human:bo"}


def test_compare_table_and_cli(datasets, capsys):
    va, human, _ = datasets
    text = format_table(compare([human, va]))
    assert "| metric | human | va | reference (human study) |" in text
    assert "navigation : placement" in text and "| 0.67 - 0.78 |" in text
    assert "median reaction time: navigate (ms) | 300 | n/a |" in text
    assert main(["compare", str(human), str(va)]) == 0
    assert capsys.readouterr().out == text
    assert main(["compare", str(human), str(va), "--json", "--tasks", TASK]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [g["label"] for g in out["groups"]] == ["human", "va"]
    assert out["reference"][TASK]["mean_length"] == [70, 120]


def test_compare_errors_are_one_line(datasets, tmp_path, capsys):
    va, _, _ = datasets
    assert main(["compare", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a dataset" in err and "\n" not in err
    assert main(["compare", str(va), "--tasks", "neuron_tracking"]) == 2
    assert "in none of the datasets" in capsys.readouterr().err
    assert main(["compare", str(va), "--split", "test"]) == 2
    assert "no episodes in split test" in capsys.readouterr().err


def test_serve_binds_loopback_and_warns_otherwise(tmp_path, monkeypatch, capsys):
    import uvicorn

    calls = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append(kw))
    assert main(["serve", "--out", str(tmp_path / "a"), "--tasks", TASK, "--port", "8123"]) == 0
    assert calls[-1]["host"] == "127.0.0.1" and calls[-1]["port"] == 8123
    err = capsys.readouterr().err
    assert "WARNING" not in err and "http://127.0.0.1:8123/" in err
    assert main(["serve", "--host", "0.0.0.0", "--out", str(tmp_path / "b"), "--tasks", TASK]) == 0
    assert calls[-1]["host"] == "0.0.0.0"
    assert "WARNING: listening on 0.0.0.0" in capsys.readouterr().err
    assert main(["serve", "--out", str(tmp_path / "c"), "--tasks", "nope"]) == 2
    assert "unknown task 'nope'" in capsys.readouterr().err
    assert main(["serve", "--out", str(tmp_path / "c"), "--scale", "0"]) == 2
    assert main(["serve", "--out", str(tmp_path / "c"), "--replay", str(tmp_path / "none")]) == 2
    assert "not a dataset" in capsys.readouterr().err
