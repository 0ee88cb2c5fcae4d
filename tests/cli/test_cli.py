import json

from PIL import Image

from annobc.cli.main import main
from annobc.data import EpisodeStore


def test_tasks_json(capsys):
    assert main(["tasks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert any(r["task"] == "colored_dot_tracking" for r in rows)


def test_play_writes_gif_with_one_frame_per_click(tmp_path, capsys):
    out = tmp_path / "ep.gif"
    assert main(["play", "colored_dot_tracking", "--seed", "2", "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    img = Image.open(out)
    assert img.n_frames == summary["clicks"] + 1
    assert img.size == (320, 256)


def test_stats_json_has_the_documented_keys(capsys):
    assert main(["stats", "colored_dot_tracking", "--episodes", "5", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    for key in ("task", "episodes", "success_rate", "mean_length", "action_mix", "correction_rate",
                "mistake_rate"):
        assert key in s
    assert s["episodes"] == 5
    assert abs(sum(s["action_mix"].values()) - 1.0) < 1e-9
    assert set(s["action_mix"]) == {"navigate", "place", "view", "select", "undo", "done", "invalid"}


def test_unknown_persona_is_a_one_line_error(capsys):
    assert main(["stats", "colored_dot_tracking", "--episodes", "1", "--persona", "nobody"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown persona 'nobody'" in err and "\n" not in err


TINY = ["--workers", "1", "data.workers=0", "data.window=2", "optim.batch_size=4",
        "model.overrides={cnn_channels: [4, 8, 8], d_model: 16, n_layers: 1, n_heads: 2}"]


def test_demo_runs_the_whole_loop_at_a_tiny_scale(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--tasks", "colored_dot_tracking,cell_lineage_tracking",
            "--episodes-per-task", "6", "--steps", "5", "--round-steps", "2", "--eval-episodes", "2",
            "--eval-max-steps", "10", "--tf-windows", "16", "--recovery-seeds", "3",
            "--rounds", "1", "--round-episodes", "3", "--check-episodes", "2", *TINY]
    assert main(args) == 0
    printed = capsys.readouterr().out
    report = out / "eval-T0.4" / "report.md"
    assert f"report: {report}" in printed
    text = report.read_text()
    assert "colored_dot_tracking" in text and "cell_lineage_tracking" in text
    assert (out / "train" / "checkpoints" / "latest").exists()
    # one DAgger round: 3 episodes per task labelled by the annotator, then training on
    assert "3 DAgger episodes" in printed
    assert (out / "round1" / "checkpoints" / "latest").exists()
    assert sum("dagger" in e for e in EpisodeStore(out / "data").episode_ids("train")) == 6
    assert (out / "data" / "dataset.json").exists()
    state = json.loads((out / "loop.json").read_text())
    assert set(state["stages"]) >= {"data", "train", "check/0", "round/1/dagger", "round/1/train",
                                    "check/1", "eval/0.4"}
    # Run again: every stage is finished, nothing is redone.
    assert main(args) == 0
    again = capsys.readouterr().out
    assert "generating" not in again and " steps -> " not in again and "DAgger episodes" not in again
    assert json.loads((out / "loop.json").read_text())["stages"]["train"] == state["stages"]["train"]
    # Other settings into the same folder: a one-line error.
    assert main([a if a != "5" else "7" for a in args]) == 2
    err = capsys.readouterr().err.strip()
    assert "other settings (steps" in err and "\n" not in err
