"""Closed-loop rollouts, mistake recovery, and the full `annobc eval` on a tiny checkpoint."""

import json

import numpy as np
import pytest
import torch

from annobc.data import Plan, generate
from annobc.eval.closed_loop import mistake_recovery, new_rollout, run_rollouts, wilson_interval
from annobc.eval.evaluate import evaluate
from annobc.models import ClickPolicy, PolicyConfig
from annobc.tasks import get_task_class, replay
from annobc.train.config import load_config
from annobc.train.train import train

TASKS = ("colored_dot_tracking", "neuron_tracking")
TINY = dict(cnn_channels=(4, 8, 8), d_model=16, n_layers=1, n_heads=2, window=3)


VARIANTS = {"xy": dict(head="xy"), "cells": dict(head="cells"),
            "cells+history+target": dict(head="cells", cell_history=2, target_head=True)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_incremental_rollout_equals_full_window_prediction(variant):
    torch.manual_seed(0)
    model = ClickPolicy(PolicyConfig(**VARIANTS[variant], **TINY)).eval()
    if model.cfg.cell_history:
        torch.nn.init.normal_(model.history.out.weight)  # zero-initialised: make it matter
    if model.cfg.target_head:
        torch.nn.init.normal_(model.target_read.weight)
    r = new_rollout(TASKS[0], 5, (160, 128), "dark", max_steps=7, name="t")  # longer than K
    run_rollouts(model, [r], temperature=0.0)
    rec = r.record
    assert len(rec) == 7 or rec.done
    frames = list(replay(rec))
    k = TINY["window"]
    for t in range(len(rec)):
        idx = np.arange(t - k + 1, t + 1)
        valid = idx >= 0
        src = np.where(valid, idx, 0)
        clicks = np.array(rec.clicks)
        prev = np.where(valid[:, None] & (src[:, None] > 0), clicks[np.maximum(src - 1, 0)], 0)
        batch = {
            "frames": torch.from_numpy(np.stack([frames[i] if v else np.zeros_like(frames[0])
                                                 for i, v in zip(src, valid)]))[None],
            "prev_xy": torch.from_numpy(prev)[None].long(),
            "bos": torch.from_numpy(idx == 0)[None],
            "valid": torch.from_numpy(valid)[None],
        }
        assert tuple(model.predict(batch)[0].tolist()) == rec.clicks[t], t


def test_wilson_interval():
    lo, hi = wilson_interval(0, 20)
    assert lo == 0.0 and 0.1 < hi < 0.2
    lo, hi = wilson_interval(10, 20)
    assert lo < 0.5 < hi
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_mistake_recovery_starts_from_annotator_mistakes():
    model = ClickPolicy(PolicyConfig(**TINY)).eval()
    r = mistake_recovery(model, TASKS[0], list(range(40)), (160, 128), horizon=4)
    assert r["states"] > 0
    assert 0.0 <= r["policy_removed_mistake"] <= 1.0
    assert r["annotator_removed_mistake"] > 0.5  # the annotator notices most of its mistakes
    assert r["expert_removed_mistake"] >= r["annotator_removed_mistake"]  # the expert notices all


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ev")
    generate(root / "data", Plan(tasks=TASKS, episodes_per_task=6, shard_size=3), progress=False)
    cfg = load_config(None, [f"data.path={root / 'data'}", f"run.out_dir={root}", "run.name=run",
                             "model.overrides={cnn_channels: [4, 8, 8], d_model: 16, n_layers: 1, n_heads: 2}",
                             "data.window=3", "optim.batch_size=4", "optim.max_steps=3",
                             "run.eval_every=1000", "run.eval_windows=16", "run.device=cpu"])
    train(cfg, progress=False)
    return root


def test_eval_of_a_tiny_checkpoint_on_two_tasks(tiny_run):
    res = evaluate(str(tiny_run / "run"), list(TASKS), episodes=2, temperature=0.4, max_steps=12,
                   out=str(tiny_run / "eval"), gifs_per_task=1, tf_windows=32, recovery_seeds=6,
                   progress=False)
    saved = json.loads((tiny_run / "eval" / "results.json").read_text())
    assert saved["provenance"]["checkpoint_step"] == 3
    assert len(saved["provenance"]["dataset_card_sha256"]) == 64
    for t in TASKS:
        m = res["closed_loop"][t]
        assert m["episodes"] == 2 and 0 <= m["success_rate"] <= 1
        assert m["success_ci95"][0] <= m["success_rate"] <= m["success_ci95"][1]
        assert m["mean_length"] <= 12
        assert set(m["training_data"]) >= {"success_rate", "correction_rate", "mistake_rate"}
        assert m["chance_level"] == get_task_class(t).chance_level
        assert m["above_chance"] == (m["success_ci95"][0] > m["chance_level"])
        wins = round(m["success_rate"] * 2)
        assert (m["done_when_successful"] is None) == (wins == 0)
        assert (tiny_run / "eval" / f"{t}-0.gif").exists()
        assert t in res["mistake_recovery"]
    tf = res["teacher_forced"]
    # Every task gets the same number of teacher-forced windows (the cap applies per task).
    assert {t: v["n"] for t, v in tf["by_task"].items()} == {t: 32 for t in TASKS}
    for t, v in tf["by_task"].items():
        assert sum(b["n"] for b in v["accuracy_by_button"].values()) == sum(
            n for k, n in v["count_by_category"].items() if k not in ("place", "invalid"))
    report = (tiny_run / "eval" / "report.md").read_text()
    assert "closed-loop success" in report and "Mistake recovery" in report
    assert (tiny_run / "eval" / "closed_loop_success.png").exists()
    assert (tiny_run / "eval" / "training_curves.png").exists()


def test_eval_cli_json(tiny_run, capsys):
    from annobc.cli.main import main

    assert main(["eval", str(tiny_run / "run"), "--tasks", TASKS[0], "--episodes", "1",
                 "--max-steps", "5", "--gifs", "0", "--tf-windows", "8", "--recovery-seeds", "2",
                 "--out", str(tiny_run / "eval2"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["closed_loop"]) == [TASKS[0]]
    assert main(["eval", str(tiny_run / "run"), "--tasks", "road_network_construction",
                 "--episodes", "1"]) == 2
