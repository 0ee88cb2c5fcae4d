"""annobc study transfer end to end on two held-out tasks, a tiny model and a few steps: report,
results, a kill and a rerun that reuses the finished units; a plugin task held out; the data
efficiency arithmetic on made-up curves."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from annobc.study import run_study
from annobc.study.transfer import (compare, episodes_to_reach, gain, pretrain_run_names,
                                   pretraining_sets)

from .conftest import TINY, TRAIN, check_report_figures, killed_then_rerun

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "annobc-example-task"
HELD_OUT = ["neuron_tracking", "3d_exploration_classification"]
SETTINGS = dict(tasks="colored_dot_tracking,neuron_tracking,3d_exploration_classification",
                held_out=HELD_OUT, pretrain_episodes_per_task=4, pretrain_steps=4,
                model_overrides=TINY, episodes=[2, 4], val_episodes_per_task=2, finetune_steps=3,
                tf_windows=16, tf_batch=8, closed_loop_episodes=2, closed_loop_max_steps=10,
                bootstrap=50, data_workers=1, threads=1, train_overrides=TRAIN)
# Stopped before the closed loop of the first grid run: datasets of the pretraining and of the first
# held-out task, the pretraining run, the zero-shot scores, then one fine-tuning run and its TF score.
FIRST_UNITS = {"data-pretrain", "train-pretrain", "data-neuron_tracking-train-n2",
               "data-neuron_tracking-train-n4", "data-neuron_tracking-val", "tf-neuron_tracking-zero-shot",
               "cl-neuron_tracking-zero-shot", "train-neuron_tracking-published-n2",
               "tf-neuron_tracking-published-n2"}


@pytest.fixture(scope="module")
def killed_then_finished(tmp_path_factory):
    return killed_then_rerun("transfer", tmp_path_factory.mktemp("transfer"), SETTINGS, len(FIRST_UNITS))


def test_runs_end_to_end_and_writes_its_report(killed_then_finished):
    out, _, _, _, res = killed_then_finished
    assert res["held_out"] == HELD_OUT and res["episodes"] == [2, 4]
    assert res["arms"] == ["published", "full", "scratch"]
    # one pretraining run, shared, on the task that is held out from neither
    assert res["pretraining"] == {t: {"run": "pretrain", "tasks": ["colored_dot_tracking"]} for t in HELD_OUT}
    card = json.loads((out / "data" / "pretrain" / "dataset.json").read_text())
    assert set(card["tasks"]) == {"colored_dot_tracking"}
    # the recipes as trained: published at 3e-5 with the backbone at 0.01x; full and scratch at the
    # base config's settings; every arm the same steps
    o = res["optim"]
    assert o["published"]["lr"] == pytest.approx(3e-5) and o["published"]["backbone_lr_mult"] == 0.01
    assert o["full"]["lr"] == o["scratch"]["lr"] == 1e-3 and o["full"]["backbone_lr_mult"] == 1.0
    assert o["scratch"]["init"] == "random" and o["full"]["init"] == "pretrained"
    for t in HELD_OUT:
        d = res["by_task"][t]
        assert d["zero_shot"]["steps"] == 4  # the pretraining run itself
        for arm in res["arms"]:
            for n in ("2", "4"):
                f = d["arms"][arm][n]
                assert f["steps"] == 3
                acc = f["teacher_forced"]["accuracy"]
                assert acc["n"] == d["windows"] and 0 <= acc["ci95"][0] <= acc["value"] <= acc["ci95"][1] <= 1
                assert f["closed_loop"]["success"]["n"] == 2
        for r in ("published", "full"):
            assert set(d["vs_scratch"][r]) == {"2", "4"}
            assert set(d["efficiency"][r]) == {"accuracy", "success"}
            assert res["verdicts"][t][r]["accuracy_verdict"] in ("holds", "does not hold")
    # a fine-tuned run starts from the pretraining run's weights; scratch does not
    cfg = (out / "runs" / "neuron_tracking-published-n2" / "config.yaml").read_text()
    assert f"init_from: {out / 'runs' / 'pretrain'}" in cfg
    assert "init_from: ''" in (out / "runs" / "neuron_tracking-scratch-n2" / "config.yaml").read_text()
    prov = res["provenance"]
    assert len(prov["pretraining_runs"]["pretrain"]["card_sha256"]) == 64
    assert prov["seeds"]["closed_loop_test_seeds"]["neuron_tracking"][0] >= 20_000_000
    report = (out / "report.md").read_text()
    for png in ("transfer_accuracy.png", "transfer_success.png"):
        assert f"({png})" in report and (out / png).stat().st_size > 1000
    assert "same 3 steps" in report and "## 3d_exploration_classification" in report


def test_every_table_figure_of_the_report_is_in_results_json(killed_then_finished):
    out = killed_then_finished[0]
    assert check_report_figures(out) > 200


def test_a_killed_study_reuses_its_finished_units(killed_then_finished):
    out, first, weights, marks, res = killed_then_finished
    assert first == FIRST_UNITS
    assert len(weights) == 2  # the pretraining run and the first fine-tuning run
    assert FIRST_UNITS <= set(res["units"]["reused"])
    assert "pretrain" not in res["units"]["trained"]
    assert "neuron_tracking-published-n2" not in res["units"]["trained"]
    assert len(res["units"]["trained"]) == 2 * 2 * 3 - 1
    assert "cl-neuron_tracking-published-n2" in res["units"]["computed"]
    assert {p: p.stat().st_mtime_ns for p in weights} == weights
    assert all(p.stat().st_mtime_ns == t for p, t in marks.items())
    again = run_study("transfer", "micro", out, SETTINGS, progress=False)
    assert again["units"]["computed"] == [] and again["units"]["trained"] == []
    assert again["by_task"] == res["by_task"]


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    """The example plugin visible through a path entry point (as tests/tasks/test_plugins.py does),
    and this checkout's annobc before any installed one."""
    site = tmp_path_factory.mktemp("site")
    info = site / "annobc_example_task-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: annobc-example-task\nVersion: 0.1.0\n")
    line = next(ln for ln in (PLUGIN / "pyproject.toml").read_text().splitlines()
                if ln.startswith("blink_marking"))
    name, value = (part.strip().strip('"') for part in line.split("="))
    (info / "entry_points.txt").write_text(f"[annobc.tasks]\n{name} = {value}\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(PLUGIN / "src"), str(ROOT / "src"),
                                         env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def test_a_plugin_task_is_held_out(plugin_env, tmp_path):
    sets = {**{k: v for k, v in SETTINGS.items() if k != "held_out"},
            "tasks": "colored_dot_tracking", "episodes": [2, 3]}
    argv = [sys.executable, "-m", "annobc.cli.main", "study", "transfer", "--held-out", "blink_marking",
            "--out", str(tmp_path), "--json"]
    for k, v in sets.items():
        argv += ["--set", f"{k}={json.dumps(v) if not isinstance(v, str) else v}"]
    p = subprocess.run(argv, env=plugin_env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout)
    assert res["held_out"] == ["blink_marking"]
    # the pretrained model never saw it: the pool is the built-in task, the plugin's only in its own data
    assert res["pretraining"]["blink_marking"]["tasks"] == ["colored_dot_tracking"]
    card = json.loads((tmp_path / "data" / "pretrain" / "dataset.json").read_text())
    assert set(card["tasks"]) == {"colored_dot_tracking"}
    val = json.loads((tmp_path / "data" / "blink_marking" / "val" / "dataset.json").read_text())
    assert set(val["tasks"]) == {"blink_marking"}
    d = res["by_task"]["blink_marking"]
    assert d["arms"]["published"]["3"]["teacher_forced"]["accuracy"]["n"] == d["windows"] > 0
    assert d["arms"]["scratch"]["3"]["closed_loop"]["success"]["n"] == 2
    assert check_report_figures(tmp_path) > 50


def test_plugin_held_out_needs_the_plugin(tmp_path):
    from annobc.study import plan_study

    with pytest.raises(ValueError, match="unknown task 'blink_marking'"):
        plan_study("transfer", "micro", tmp_path, {"held_out": ["blink_marking"]})


def test_episodes_to_reach_interpolates_at_log_n():
    e = episodes_to_reach([0.2, 0.4, 0.8], [10, 100, 1000], 0.6)
    assert e["reached"] and not e["censored"] and e["episodes"] == pytest.approx(10 ** 2.5)
    assert episodes_to_reach([0.5, 0.9], [10, 100], 0.4) == {"episodes": 10.0, "censored": True,
                                                            "reached": True}
    assert not episodes_to_reach([0.1, 0.2], [10, 100], 0.3)["reached"]


def test_the_gain_says_when_scratch_does_not_get_there():
    scratch, eps = [0.2, 0.4, 0.8], [10, 30, 100]
    g = gain(0.6, 10, scratch, eps)
    assert g["status"] == "reached" and g["gain"] == pytest.approx(10 ** 0.5 * 3 ** 0.5, rel=1e-6)
    g = gain(0.9, 10, scratch, eps)
    assert g["status"] == "not reached" and g["gain"] is None and g["gain_at_least"] == 10.0
    assert g["scratch_best"] == 0.8
    assert gain(0.1, 30, scratch, eps)["status"] == "censored"
    assert gain(0.0, 10, scratch, eps)["status"] == "not testable"


def test_fine_tuned_against_scratch():
    def fig(acc, k, n=20):
        from annobc.study.common import proportion

        return {"teacher_forced": {"accuracy": {"value": acc}},
                "closed_loop": {"success": proportion(k, n)}}

    rng = np.random.default_rng(0)
    boot_ft, boot_sc = 0.7 + 0.02 * rng.standard_normal(200), 0.3 + 0.02 * rng.standard_normal(200)
    c = compare(fig(0.7, 18), fig(0.3, 2), boot_ft, boot_sc)
    assert c["accuracy_verdict"] == "holds" and c["accuracy_significant"]
    assert c["accuracy_difference"] == pytest.approx(0.4)
    assert c["success_verdict"] == "holds" and c["success_significant"]
    c = compare(fig(0.3, 0), fig(0.3, 0), boot_sc, boot_sc)
    assert c["accuracy_verdict"] == "does not hold" and not c["accuracy_significant"]
    assert c["success_verdict"] == "not testable"


def test_pretraining_runs_leave_the_held_out_tasks_out():
    pool = "colored_dot_tracking,neuron_tracking,road_network_construction"
    c = {"tasks": pool, "pretraining": "leave_one_out"}
    sets = pretraining_sets(c, ["neuron_tracking", "road_network_construction"])
    assert sets == {"neuron_tracking": ("colored_dot_tracking", "road_network_construction"),
                    "road_network_construction": ("colored_dot_tracking", "neuron_tracking")}
    assert sorted(pretrain_run_names(sets, pool.split(",")).values()) == [
        "pretrain-without-neuron_tracking", "pretrain-without-road_network_construction"]
    # shared: one run on what is held out from neither, reused by both
    shared = pretraining_sets({**c, "pretraining": "shared"}, ["neuron_tracking", "road_network_construction"])
    assert set(shared.values()) == {("colored_dot_tracking",)}
    assert pretrain_run_names(shared, pool.split(",")) == {("colored_dot_tracking",): "pretrain"}
    # a task outside the pool (a plugin's) is held out of every run, and shares the whole-pool run
    c = {"tasks": "colored_dot_tracking,neuron_tracking", "pretraining": "leave_one_out"}
    sets = pretraining_sets(c, ["neuron_tracking", "3d_exploration_classification"])
    names = pretrain_run_names(sets, ["colored_dot_tracking", "neuron_tracking"])
    assert names == {("colored_dot_tracking",): "pretrain-without-neuron_tracking",
                     ("colored_dot_tracking", "neuron_tracking"): "pretrain-all"}
    with pytest.raises(ValueError, match="no task left to pretrain on"):
        pretraining_sets({"tasks": "neuron_tracking", "pretraining": "shared"}, ["neuron_tracking"])
