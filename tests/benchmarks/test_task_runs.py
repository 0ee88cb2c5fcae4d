"""benchmarks/single_task.py and benchmarks/nine_task_run.py at a tiny scale: they run, write
their results with every per-task figure the issue asks for, and resume."""

import json

from tests.benchmarks import load

TINY = ["data.workers=0", "data.window=2", "optim.batch_size=4",
        "model.overrides={cnn_channels: [4, 8, 8], d_model: 16, n_layers: 1, n_heads: 2}"]


def test_single_task_runs_each_task_alone_and_keeps_finished_tasks(tmp_path, capsys):
    bench = load("single_task")
    result = tmp_path / "single_task.json"
    common = ["--steps", "3", "--episodes-per-task", "5", "--eval-episodes", "2",
              "--out", str(tmp_path / "runs"), "--result", str(result), *TINY]
    assert bench.main(["--tasks", "colored_dot_tracking", *common]) == 0
    assert bench.main(["--tasks", "3d_exploration_classification", *common]) == 0
    rows = json.loads(result.read_text())["tasks"]
    assert set(rows) == {"colored_dot_tracking", "3d_exploration_classification"}
    cl = rows["3d_exploration_classification"]["closed_loop"]
    assert cl["episodes"] == 2 and cl["chance_level"] == 0.25
    assert {"done_rate", "done_when_successful", "mistake_rate", "correction_rate",
            "mean_length", "training_data"} <= set(cl)
    assert "accuracy_by_button" in rows["colored_dot_tracking"]["teacher_forced"]
    # only colored dots trained with the demo's dot range
    card = json.loads((tmp_path / "runs" / "colored_dot_tracking" / "data" / "dataset.json").read_text())
    assert card["tasks"]["colored_dot_tracking"]["params"]["n_targets"] == [4, 8]


def test_nine_task_run_has_rounds_and_two_temperatures(tmp_path, capsys):
    bench = load("nine_task_run")
    result = tmp_path / "nine.json"
    args = ["--tasks", "colored_dot_tracking,neuron_tracking", "--episodes-per-task", "5",
            "--steps", "3", "--rounds", "1", "--round-episodes", "2", "--round-steps", "2",
            "--check-episodes", "2", "--eval-episodes", "2", "--workers", "1",
            "--out", str(tmp_path / "run"), "--result", str(result), *TINY]
    assert bench.main(args) == 0
    saved = json.loads(result.read_text())
    assert saved["steps"] == 5 and set(saved["tasks"]) == {"colored_dot_tracking", "neuron_tracking"}
    for by_t in saved["tasks"].values():
        assert set(by_t) == {"0.4", "0"}
        assert len(by_t["0.4"]["success_by_round"]) == 2
    assert "| colored_dot_tracking |" in saved["table"]
    capsys.readouterr()
    assert bench.main(args) == 0  # finished: a rerun only rewrites the results
    assert " steps -> " not in capsys.readouterr().out
