"""annobc study emergence end to end on two tasks, a few steps: report, results, resume; and its
analysis on made-up per-window flags."""

import json

import numpy as np
import pytest

from annobc.study import StudyError, UnitLimit, run_study
from annobc.study.emergence import SKILLS, analyse_skills
from annobc.tasks.base import CATEGORIES

from .conftest import check_report_figures


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    from .conftest import TASKS, TINY, TRAIN

    out = tmp_path_factory.mktemp("emergence")
    settings = dict(tasks=TASKS, episodes_per_task=5, data_workers=1, model_overrides=TINY,
                    train_steps=8, first_step=1, checkpoints=5, tf_windows=16, tf_batch=8,
                    closed_loop_checkpoints=2, closed_loop_episodes=2, final_closed_loop_episodes=3,
                    closed_loop_max_steps=12, recovery_seeds=2, bootstrap=50, min_windows=1,
                    threads=1, train_overrides=TRAIN)
    return out, run_study("emergence", "micro", out, settings, progress=False)


def test_runs_end_to_end_and_writes_its_report(finished):
    out, res = finished
    steps = res["teacher_forced"]["steps"]
    assert steps == [1, 2, 3, 5, 8]
    # every checkpoint of the schedule survived rotation and was scored
    assert res["provenance"]["checkpoint_steps"] == steps
    for s in steps:
        assert (out / "runs" / "policy" / "checkpoints" / f"step-{s:07d}" / "state.json").exists()
    assert set(res["skills"]) == {"overall", "colored_dot_tracking", "3d_exploration_classification"}
    assert set(res["skills"]["overall"]) == set(SKILLS)
    assert res["closed_loop"]["steps"] == [1, 8]
    for t in ("colored_dot_tracking", "3d_exploration_classification"):
        assert res["mistakes"][t]["verdict"] in ("holds", "does not hold", "not testable")
        assert res["corrections"][t]["verdict"] in ("holds", "does not hold", "not testable")
        assert res["ordering"][t]["verdict"] in ("holds", "does not hold", "not testable")
        assert res["closed_loop"]["by_step"]["8"][t]["episodes"] == 3
        assert res["closed_loop"]["by_step"]["1"][t]["episodes"] == 2
    prov = res["provenance"]
    assert prov["code_version"] and len(prov["dataset_card_sha256"]) == 64
    assert prov["seeds"]["closed_loop_test_seeds"][0] >= 20_000_000
    report = (out / "report.md").read_text()
    for png in ("skill_curves.png", "mistake_rates.png"):
        assert f"({png})" in report and (out / png).stat().st_size > 1000


def test_every_table_figure_of_the_report_is_in_results_json(finished):
    out, _ = finished
    assert check_report_figures(out) > 50


def test_a_killed_study_reuses_its_finished_units(tmp_path, emergence_settings):
    with pytest.raises(UnitLimit):
        run_study("emergence", "micro", tmp_path, emergence_settings, progress=False, max_new_units=4)
    units = tmp_path / "units"
    assert {p.stem for p in units.glob("*.json")} == {"data", "train-policy", "tf-step-0000001",
                                                       "tf-step-0000002"}
    weights = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*.safetensors")}
    marks = {p: p.stat().st_mtime_ns for p in units.iterdir()}
    assert len(weights) >= 10  # 5 kept checkpoints, model + optimizer each
    res = run_study("emergence", "micro", tmp_path, emergence_settings, progress=False)
    assert res["units"]["trained"] == []
    assert {"data", "train-policy", "tf-step-0000001", "tf-step-0000002"} <= set(res["units"]["reused"])
    assert "tf-step-0000003" in res["units"]["computed"]
    assert {p: p.stat().st_mtime_ns for p in weights} == weights
    assert all(p.stat().st_mtime_ns == t for p, t in marks.items())
    # and a third run recomputes nothing
    again = run_study("emergence", "micro", tmp_path, emergence_settings, progress=False)
    assert again["units"]["computed"] == [] and again["skills"] == res["skills"]


def test_a_run_killed_during_training_resumes_from_its_checkpoint(tmp_path, emergence_settings):
    from annobc.study.common import Study, study_settings
    from annobc.study.emergence import plan_runs
    from annobc.train.config import load_config
    from annobc.train.train import train

    with pytest.raises(UnitLimit):  # the dataset only
        run_study("emergence", "micro", tmp_path, emergence_settings, progress=False, max_new_units=1)
    study = Study("emergence", "micro", tmp_path, study_settings("emergence", "micro", emergence_settings))
    overrides = plan_runs(study)["train"][0]["overrides"]
    # the same run stopped by its time limit after one step: a checkpoint, no done-marker
    train(load_config("cpu_demo", overrides + ["optim.max_minutes=0.000001"]), progress=False)
    res = run_study("emergence", "micro", tmp_path, emergence_settings, progress=False)
    unit = json.loads((tmp_path / "units" / "train-policy.json").read_text())
    assert unit["resumed"] and unit["step"] == 8 and res["units"]["trained"] == ["policy"]
    assert unit["checkpoint_steps"] == [1, 2, 3, 5, 8]


def test_other_settings_in_the_same_folder_are_refused(tmp_path, emergence_settings):
    with pytest.raises(UnitLimit):
        run_study("emergence", "micro", tmp_path, emergence_settings, progress=False, max_new_units=0)
    with pytest.raises(StudyError, match="train_steps"):
        run_study("emergence", "micro", tmp_path, {**emergence_settings, "train_steps": 9},
                  progress=False)
    with pytest.raises(StudyError, match="unknown setting"):
        run_study("emergence", "micro", tmp_path / "x", {"no_such_key": 1}, progress=False)


def made_up_rows(steps, early: str, late: str, n=200, seed=0):
    """Windows of one task: half place, half navigate; skill ``early`` learned by the 2nd
    checkpoint, ``late`` only at the last."""
    rng = np.random.default_rng(seed)
    cat = np.where(np.arange(n) % 2 == 0, CATEGORIES.index("place"), CATEGORIES.index("navigate"))
    c = len(steps)
    level = {"early": np.array([0.1] + [0.9] * (c - 1)), "late": np.array([0.1] * (c - 1) + [0.9])}

    def flags(which):
        return rng.random((c, n)) < level[which][:, None]

    by = {early: "early", late: "late"}
    place = flags(by.get("placement", "early"))
    nav = flags(by.get("buttons", "early"))
    valid = np.ones((c, n), bool)
    same = np.where(cat == CATEGORIES.index("navigate"), nav, False)
    return {"task": np.zeros(n, int), "category": cat,
            "flags": {"valid_action": valid, "same_element": same, "dist2": place, "dist5": place}}


SETTINGS = {"seed": 0, "bootstrap": 200, "reach_fraction": 0.9, "min_windows": 5, "learned_floor": 0.05}


def test_the_ordering_holds_when_buttons_come_before_placement():
    steps = [10, 30, 100, 300, 1000]
    skills, order = analyse_skills(made_up_rows(steps, "buttons", "placement"), steps,
                                   ("colored_dot_tracking",), SETTINGS)
    s = skills["colored_dot_tracking"]
    assert s["controls"]["t90_step"] <= 30 and s["placement@5"]["t90_step"] > 300
    assert s["decisions"]["status"] == "not measured"  # no select windows
    lo, hi = s["placement@5"]["ci95"]
    assert lo <= s["placement@5"]["t90_step"] <= hi
    assert order["colored_dot_tracking"]["verdict"] == "holds"
    assert order["colored_dot_tracking"]["bootstrap_support"] > 0.9
    assert order["overall"]["verdict"] == "holds"


def test_the_ordering_does_not_hold_when_placement_comes_first():
    steps = [10, 30, 100, 300, 1000]
    _, order = analyse_skills(made_up_rows(steps, "placement", "buttons"), steps,
                              ("colored_dot_tracking",), SETTINGS)
    assert order["colored_dot_tracking"]["verdict"] == "does not hold"
    assert order["colored_dot_tracking"]["bootstrap_support"] < 0.1


def test_a_run_killed_after_training_is_not_trained_again(tmp_path, emergence_settings):
    from annobc.study.common import Study, study_settings
    from annobc.study.emergence import plan_runs
    from annobc.train.config import load_config
    from annobc.train.train import train

    with pytest.raises(UnitLimit):
        run_study("emergence", "micro", tmp_path, emergence_settings, progress=False, max_new_units=1)
    study = Study("emergence", "micro", tmp_path, study_settings("emergence", "micro", emergence_settings))
    train(load_config("cpu_demo", plan_runs(study)["train"][0]["overrides"]), progress=False)
    weights = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("*.safetensors")}
    res = run_study("emergence", "micro", tmp_path, emergence_settings, progress=False)
    assert res["units"]["trained"] == []
    assert {p: p.stat().st_mtime_ns for p in weights} == weights
