"""annobc study variants end to end on two tasks, two training variants and one held out, a tiny
model and a few steps: report, results, a kill and a rerun that reuses the finished units; an
unknown variant in one line; the verdict rule on made-up differences."""

import json
import subprocess
import sys

import numpy as np
import pytest

from annobc.data import EpisodeStore
from annobc.study import StudyError, plan_study, run_study
from annobc.study.variants import ARMS, SETS, difference, robust

from .conftest import TASKS, TINY, TRAIN, check_report_figures, killed_then_rerun

SETTINGS = dict(tasks=TASKS, training_variants=["light", "left"], held_out_variants=["bottom"],
                train_episodes_per_task=4, train_steps=4, model_overrides=TINY,
                finetune_episodes_per_task=3, finetune_steps=3, val_episodes_per_task=2,
                tf_windows=15, tf_batch=8, closed_loop_episodes=2, closed_loop_max_steps=10,
                bootstrap=50, data_workers=1, threads=1, train_overrides=TRAIN)
DATASETS = {"train-variants": {"light", "left"}, "train-default": {"default"}, "finetune": {"bottom"},
            "val-held-out": {"bottom"}, "val-training": {"light", "left"}, "val-default": {"default"}}
# Stopped before the fine-tune: every dataset, then the two runs trained from scratch.
FIRST_UNITS = {f"data-{d}" for d in DATASETS} | {"train-variants", "train-default"}


@pytest.fixture(scope="module")
def killed_then_finished(tmp_path_factory):
    return killed_then_rerun("variants", tmp_path_factory.mktemp("variants"), SETTINGS, len(FIRST_UNITS))


def test_runs_end_to_end_and_writes_its_report(killed_then_finished):
    out, _, _, _, res = killed_then_finished
    assert res["arms"] == list(ARMS) and res["sets"] == list(SETS)
    assert res["variant_sets"] == {"held-out": ["bottom"], "training": ["light", "left"],
                                   "default": ["default"]}
    # every dataset holds its variants only: the held-out one is in no training data of the two
    # runs trained from scratch
    for name, variants in DATASETS.items():
        store = EpisodeStore(out / "data" / name)
        assert set(store.episodes["ui_variant"]) == variants, name
    # both runs see the same scenes; the fine-tune new ones
    seeds = {n: set(EpisodeStore(out / "data" / n).episodes["seed"])
             for n in ("train-variants", "train-default", "finetune")}
    assert seeds["train-variants"] == seeds["train-default"]
    assert not seeds["finetune"] & seeds["train-default"]
    o = res["optim"]
    ft = o["default-finetuned"]
    assert ft["lr"] == pytest.approx(3e-5) and ft["backbone_lr_mult"] == 0.01 and ft["init"] == "pretrained"
    assert o["variants"]["lr"] == o["default"]["lr"] == 1e-3 and o["default"]["init"] == "random"
    cfg = (out / "runs" / "default-finetuned" / "config.yaml").read_text()
    assert f"init_from: {out / 'runs' / 'default'}" in cfg
    for arm in ARMS:
        for s in SETS:
            f = res["figures"][arm][s]
            assert f["steps"] == (3 if arm == "default-finetuned" else 4)
            # exactly the cap per task, shared by a set's variants (8 + 7 in the training set)
            assert f["windows"] == 2 * 15 and f["teacher_forced"]["accuracy"]["n"] == 30
            assert set(f["teacher_forced_by_variant"]) == set(res["variant_sets"][s])
            if s == "training":
                assert sorted(m["n"] for m in f["teacher_forced_by_variant"].values()) == [14, 16]
            acc = f["teacher_forced"]["accuracy"]
            assert 0 <= acc["ci95"][0] <= acc["value"] <= acc["ci95"][1] <= 1
            cl = f["closed_loop"]["success"]
            assert cl["n"] == 4 == f["episodes"]  # 2 tasks x 2 test seeds
            by_v = f["closed_loop_by_variant"]
            assert sum(p["n"] for p in by_v.values()) == 4 and set(by_v) == set(res["variant_sets"][s])
    # closed-loop seed i in variant i mod k of the set; recorded per episode
    unit = json.loads((out / "units" / "cl-variants-on-training.json").read_text())
    e = unit["episodes"]
    assert e["variant"] == [["light", "left"][i % 2] for i in range(2)] * 2
    assert e["seed"] == unit["seeds"] * 2 and unit["seeds"][0] >= 20_000_000
    for name in ("robustness", "vs_default", "default_loss", "finetune_gain", "forgetting"):
        d = res["comparisons"][name]["accuracy"]["all"]
        assert d["difference"] == pytest.approx(d["a"] - d["b"]) and len(d["ci95"]) == 2
    v = res["verdicts"]
    assert v["works_on_unseen_variants"] in ("holds", "does not hold", "not testable")
    assert set(v["by_figure"]["accuracy"]) == {"all", *TASKS.split(",")}
    report = (out / "report.md").read_text()
    assert "(variants_by_task.png)" in report and (out / "variants_by_task.png").stat().st_size > 1000
    assert f"**Works on unseen variants: {v['works_on_unseen_variants']}**" in report
    assert "## Per variant" in report and "| bottom | held-out |" in report


def test_every_table_figure_of_the_report_is_in_results_json(killed_then_finished):
    assert check_report_figures(killed_then_finished[0]) > 200


def test_a_killed_study_reuses_its_finished_units(killed_then_finished):
    out, first, weights, marks, res = killed_then_finished
    assert first == FIRST_UNITS
    assert len(weights) == 2
    assert FIRST_UNITS <= set(res["units"]["reused"])
    assert res["units"]["trained"] == ["default-finetuned"]
    assert {p: p.stat().st_mtime_ns for p in weights} == weights
    assert all(p.stat().st_mtime_ns == t for p, t in marks.items())
    again = run_study("variants", "micro", out, SETTINGS, progress=False)
    assert again["units"]["computed"] == [] and again["units"]["trained"] == []
    assert again["figures"] == res["figures"] and again["verdicts"] == res["verdicts"]


def test_an_unknown_variant_fails_in_one_line():
    p = subprocess.run([sys.executable, "-m", "annobc.cli.main", "study", "variants", "--plan", "--set",
                        "held_out_variants=[bottom, no-such-layout]"], capture_output=True, text=True,
                       timeout=120)
    err = p.stderr.strip()
    assert p.returncode == 2 and len(err.splitlines()) == 1, err
    assert "held_out_variants: unknown GUI variant 'no-such-layout'" in err and "known variants" in err


def test_held_out_variants_are_never_trained_on(tmp_path):
    with pytest.raises(StudyError, match="must not be trained on: left"):
        plan_study("variants", "micro", tmp_path, {"held_out_variants": ["left"]})
    with pytest.raises(StudyError, match="cannot be held out"):
        plan_study("variants", "micro", tmp_path, {"held_out_variants": ["default"]})
    with pytest.raises(StudyError, match="twice"):
        plan_study("variants", "micro", tmp_path, {"held_out_variants": "bottom,bottom"})


def test_the_verdict_rule():
    rng = np.random.default_rng(0)
    noise = 0.02 * rng.standard_normal(500)

    def diff(a, b):
        return difference(a, b, a + noise, b + 0.02 * rng.standard_normal(500))

    # slightly below the training variants (not significantly), well above the default model
    v = robust(diff(0.70, 0.71), diff(0.70, 0.40), "accuracy")
    assert v["verdict"] == "holds" and v["above_default_significantly"]
    # significantly below the training variants
    assert robust(diff(0.50, 0.70), diff(0.50, 0.40), "accuracy")["verdict"] == "does not hold"
    # as good as on the training variants, but no better than the default model
    v = robust(diff(0.70, 0.70), diff(0.70, 0.75), "accuracy")
    assert v["verdict"] == "does not hold" and not v["above_default"]
    assert robust(diff(0.0, 0.0), diff(0.0, 0.0), "success")["verdict"] == "not testable"
    assert robust(diff(0.0, 0.0), diff(0.0, 0.0), "accuracy")["verdict"] == "not testable"
    # no success on the held-out variants where it had some on the training ones: a loss
    assert robust(diff(0.0, 0.3), diff(0.0, 0.0), "success")["verdict"] == "does not hold"
