"""The study presets: micro spends its budget where the finding needs it; the paper configs parse,
build (the models on the meta device) and plan their runs."""

import numpy as np
import pytest

from annobc.study import PRESETS, plan_study
from annobc.study.common import (Study, log_steps, parse_settings, reach_step, spread,
                                 study_settings, train_command)
from annobc.train.config import load_config


def test_micro_presets():
    e = plan_study("emergence", "micro")
    assert len(e["checkpoint_steps"]) >= 12 and e["checkpoint_steps"][-1] == 3000
    assert len(e["closed_loop_steps"]) >= 4 and e["closed_loop_steps"][-1] == 3000
    (run,) = e["train"]
    cfg = load_config(run["base_config"], run["overrides"])
    assert cfg.run.keep_steps == e["checkpoint_steps"] and cfg.model.preset == "tiny"
    assert cfg.model.overrides["head"] == "cells" and cfg.run.device == "cpu"
    assert 0.7e6 < run["params"] < 1.6e6
    s = plan_study("scaling", "micro")
    sizes = s["episodes"]
    assert len({r["model"] for r in s["train"]}) >= 2 and len(sizes) >= 4
    ratios = np.diff(np.log(sizes))
    assert ratios.min() > 0.5 * ratios.max()  # log-spaced
    assert len({r["steps"] for r in s["train"]}) == 1  # the same steps in every cell
    params = {r["model"]: r["params"] for r in s["train"]}
    assert params["micro-s"] < params["tiny"]


@pytest.mark.parametrize("name", ["emergence", "scaling"])
def test_paper_configs_parse_build_and_plan(name):
    p = plan_study(name, "paper")
    assert p["settings"]["launcher"].startswith("torchrun") and p["settings"]["device"] == "cuda"
    for r in p["train"]:
        cfg = load_config(r["base_config"], r["overrides"])  # parses
        assert cfg.optim.max_steps == 100_000 and cfg.run.device == "cuda"
        assert cfg.model.overrides["head"] == "xy"
        assert r["model_config"]["screen_w"] == 448 and r["estimate"]["gpu_hours"] > 0
    if name == "emergence":
        (r,) = p["train"]
        assert 90e6 < r["params"] < 110e6  # vit-b
        assert len(p["checkpoint_steps"]) >= 12 and p["checkpoint_steps"][-1] == 100_000
        assert load_config(r["base_config"], r["overrides"]).run.keep_steps == p["checkpoint_steps"]
    else:
        params = {}
        for r in p["train"]:
            params[load_config(r["base_config"], r["overrides"]).model.preset] = r["params"]
        assert set(params) == {"small", "vit-s", "vit-b"}
        assert params["small"] < params["vit-s"] < params["vit-b"]
        assert 25e6 < params["vit-s"] < 35e6 and 90e6 < params["vit-b"] < 110e6
        assert len(p["episodes"]) >= 4
    assert p["estimated_training_gpu_hours"] > 1 and "estimate" in p["estimate_note"]


@pytest.mark.parametrize("scale", ["micro", "paper"])
def test_probes_plan_reads_the_emergence_run(scale):
    p = plan_study("probes", scale)
    e = plan_study("emergence", scale)
    assert p["train"] == [] and p["estimated_training_gpu_hours"] == 0
    (read,) = p["reads"]
    assert read["emergence_dir"] == f"runs/study/emergence-{scale}"
    assert read["overrides"] == e["train"][0]["overrides"] and read["params"] == e["train"][0]["params"]
    assert p["checkpoint_steps"] == e["checkpoint_steps"]
    assert p["probed_steps"][0] == e["checkpoint_steps"][0] and p["probed_steps"][-1] == e["checkpoint_steps"][-1]
    if scale == "paper":
        assert 90e6 < read["params"] < 110e6 and len(p["probed_steps"]) == 16  # vit-b, every checkpoint
        assert p["estimated_evaluation_gpu_hours"] > 0
    else:
        assert len(p["probed_steps"]) == 7 and len(p["tasks"]) == 9
    assert p["evaluations"][-2:] == [f"cross-task-step-{p['probed_steps'][-1]:07d}", "cross-task-random"]


def test_torchrun_command_of_the_paper_scale(tmp_path):
    study = Study("emergence", "paper", tmp_path, study_settings("emergence", "paper"))
    cmd = train_command(study, ["optim.max_steps=5"], resume=True)
    assert cmd[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node" in cmd
    assert cmd[cmd.index("--nproc_per_node") + 1] == "8"
    assert cmd[-3:] == ["gpu_paper", "optim.max_steps=5", "--resume"]
    assert not (tmp_path / "study.json").exists()  # planning touches no file


def test_every_preset_has_both_scales():
    for name, scales in PRESETS.items():
        assert set(scales) == {"micro", "paper"}
        assert set(scales["micro"]) == set(scales["paper"]), name


def test_helpers():
    assert log_steps(10, 3000, 14)[0] == 10 and log_steps(10, 3000, 14)[-1] == 3000
    assert len(log_steps(10, 3000, 14)) == 14
    assert log_steps(1, 3, 12) == [1, 2, 3]
    assert spread(list(range(10)), 4) == [0, 3, 6, 9]
    assert parse_settings(["train_steps=8", "tasks=a,b", "models=[1, 2]"]) == {
        "train_steps": 8, "tasks": "a,b", "models": [1, 2]}
    # reached at the third checkpoint: interpolated in log(step) between the 2nd and the 3rd
    t, censored = reach_step(np.array([[0.0, 0.5, 1.0, 1.0]]), [1, 10, 100, 1000], 0.9)
    assert not censored[0] and t[0] == pytest.approx(10 ** 1.8)
    t, censored = reach_step(np.array([[0.95, 1.0]]), [5, 50], 0.9)
    assert censored[0] and t[0] == 5
    with pytest.raises(ValueError, match="unknown setting"):
        study_settings("emergence", "micro", {"steps": 3})
    with pytest.raises(ValueError, match="unknown scale"):
        study_settings("emergence", "huge")


def test_transfer_presets():
    m = plan_study("transfer", "micro")
    # a placement, a hierarchical and a decision task held out; one pretraining run serves them,
    # on the other six tasks (none of them held out)
    assert {"neuron_tracking", "road_network_construction", "3d_exploration_classification"} <= set(m["held_out"])
    pre = [r for r in m["train"] if r["role"] == "pretraining"]
    assert len(pre) == 1 and not set(pre[0]["tasks"]) & set(m["held_out"]) and len(pre[0]["tasks"]) == 6
    assert len(m["episodes"]) >= 3 and np.ptp(np.diff(np.log(m["episodes"]))) < 0.2  # log-spaced
    grid = [r for r in m["train"] if r["role"] != "pretraining"]
    assert len(grid) == len(m["held_out"]) * len(m["episodes"]) * len(m["arms"])
    assert len({r["steps"] for r in grid}) == 1  # every arm at every N: the same steps
    by_arm = {r["role"]: load_config(r["base_config"], r["overrides"]) for r in grid}
    assert by_arm["published"].optim.lr == pytest.approx(3e-5)
    assert by_arm["published"].optim.backbone_lr_mult == pytest.approx(0.01)
    base = load_config("cpu_demo").optim
    for arm in ("full", "scratch"):  # the pretraining run's optimizer
        assert (by_arm[arm].optim.lr, by_arm[arm].optim.backbone_lr_mult) == (base.lr, base.backbone_lr_mult)
    assert by_arm["scratch"].model.init_from == "" and by_arm["full"].model.init_from.endswith("/pretrain")
    assert by_arm["published"].model.preset == "tiny" and by_arm["published"].model.overrides["head"] == "cells"
    est = m["cpu_estimate"]
    assert est["total_minutes_at_most"] <= 88  # with a few minutes of generation: within 90
    p = plan_study("transfer", "paper")
    assert len(p["held_out"]) == 9
    pre = {r["run"]: r for r in p["train"] if r["role"] == "pretraining"}
    assert len(pre) == 9
    for t, entry in p["pretraining"].items():  # leave one out: the other eight tasks
        assert t not in entry["tasks"] and len(entry["tasks"]) == 8
        assert pre[entry["run"]]["steps"] == 100_000
    for r in p["train"]:
        cfg = load_config(r["base_config"], r["overrides"])
        assert cfg.model.preset == "vit-b" and cfg.run.device == "cuda" and 90e6 < r["params"] < 110e6
        if r["role"] not in ("pretraining", "scratch"):
            assert cfg.model.init_from.endswith(p["pretraining"][r["task"]]["run"])
            assert cfg.optim.max_steps == p["settings"]["finetune_steps"]
    assert p["estimated_training_gpu_hours"] > 100 and "estimate" in p["estimate_note"]


def test_variants_presets():
    from annobc.gui import UI_VARIANTS, Layout
    from annobc.tasks import get_task_class

    m = plan_study("variants", "micro")
    sets = m["variant_sets"]
    # 8 training variants and 3 held out, disjoint, the default in neither; nine tasks
    assert len(sets["training"]) == 8 and len(sets["held-out"]) == 3 and sets["default"] == ["default"]
    assert not set(sets["training"]) & set(sets["held-out"]) and "default" not in sets["training"]
    assert len(m["tasks"]) == 9
    # the held-out ones differ on three axes: a panel side, a theme, a font scale
    held = [UI_VARIANTS[v] for v in sets["held-out"]]
    assert {v.panel for v in held} > {"right"} and {v.theme for v in held} > {"dark"}
    assert {v.font_scale for v in held} > {1.0}
    runs = {r["run"]: load_config(r["base_config"], r["overrides"]) for r in m["train"]}
    # the two runs trained from scratch: the same steps, the same number of episodes (the same scenes)
    assert runs["variants"].optim.max_steps == runs["default"].optim.max_steps == 2000
    eps = {d["unit"]: d for d in m["datasets"]}
    assert eps["data-train-variants"]["episodes_per_task"] == eps["data-train-default"]["episodes_per_task"]
    assert eps["data-train-variants"]["variants"] == sets["training"]
    assert eps["data-train-default"]["variants"] == ["default"]
    assert eps["data-finetune"]["variants"] == sets["held-out"]
    assert eps["data-finetune"]["episodes_per_task"] <= 30  # a few
    ft = runs["default-finetuned"]
    assert ft.model.init_from.endswith("/runs/default") and runs["default"].model.init_from == ""
    assert ft.optim.lr == pytest.approx(3e-5) and ft.optim.backbone_lr_mult == pytest.approx(0.01)
    assert ft.model.preset == "tiny" and ft.model.overrides["head"] == "cells"
    assert m["cpu_estimate"]["total_minutes_at_most"] <= 80  # with generation (about 5 min): within 90
    p = plan_study("variants", "paper")
    for r in p["train"]:
        cfg = load_config(r["base_config"], r["overrides"])
        assert cfg.model.preset == "vit-b" and cfg.run.device == "cuda" and 90e6 < r["params"] < 110e6
        assert cfg.model.overrides["head"] == "xy" and r["estimate"]["gpu_hours"] > 0
        steps = p["settings"]["finetune_steps"] if r["run"] == "default-finetuned" else 100_000
        assert cfg.optim.max_steps == steps
    assert p["estimated_training_gpu_hours"] > 10 and "estimate" in p["estimate_note"]
    # every task lays out in every variant of the study at both scales' screens
    for screen in (m["settings"]["screen"], p["settings"]["screen"]):
        for task in m["tasks"]:
            labels = [b.label for b in get_task_class(task).buttons]
            for v in sets["training"] + sets["held-out"]:
                Layout(*screen, labels, v)
