"""annobc study probes: the probes on made-up states (a planted direction is found, shuffled labels
are not), the hooks read the model's own forward, the cross-task rule; end to end on a tiny
emergence run: report, results, resume."""

import json

import numpy as np
import pytest
import torch

from annobc.study import StudyError, UnitLimit, run_study
from annobc.study.probes import (RANDOM, control_labels, cross_task_probes, episode_folds,
                                 hidden_states, metric, out_of_fold, shared_verdict,
                                 second_half_weights, weighted_auroc)

from .conftest import EMERGENCE, check_report_figures

C = {"probe_c": 1.0, "ridge_alpha": 1.0, "probe_max_iter": 500, "min_class": 3, "shared_margin": 0.05}


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def episodes(n_eps=30, steps=12):
    return np.repeat(np.arange(n_eps), steps)


def test_a_planted_linear_direction_is_found_and_shuffled_labels_are_not():
    rng = np.random.default_rng(0)
    groups = episodes()
    n, d = len(groups), 16
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    folds = episode_folds(groups, 5)
    shuffle = rng.permutation(n)
    # mistake: a logistic label along w
    y = X @ w + 0.3 * rng.normal(size=n) > 0
    auc = metric("mistake", y, out_of_fold("mistake", X, y, folds, C)[0])[0]
    auc_shuffled = metric("mistake", y[shuffle], out_of_fold("mistake", X, y[shuffle], folds, C)[0])[0]
    assert auc > 0.95 and abs(auc_shuffled - 0.5) < 0.1
    # position: a linear value
    pos = X @ w + 0.1 * rng.normal(size=n)
    r2 = metric("position", pos, out_of_fold("position", X, pos, folds, C)[0])[0]
    r2_shuffled = metric("position", pos[shuffle], out_of_fold("position", X, pos[shuffle], folds, C)[0])[0]
    assert r2 > 0.95 and r2_shuffled < 0.05
    # phase: three classes along three directions, against the majority class
    phase = np.argmax(X[:, :3] * 3, axis=1)
    acc = metric("phase", phase, out_of_fold("phase", X, phase, folds, C)[0])[0]
    acc_shuffled = metric("phase", phase[shuffle], out_of_fold("phase", X, phase[shuffle], folds, C)[0])[0]
    majority = np.bincount(phase).max() / n
    assert acc > 0.85 and acc_shuffled < majority + 0.05


def test_weighted_auroc_is_sklearns_with_ties_and_its_weights_are_repeats():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    s = np.round(rng.normal(size=300), 1)  # many ties
    y = rng.random(300) < 0.3 + 0.2 * (s > 0)
    assert weighted_auroc(s, y, np.ones((1, 300)))[0] == pytest.approx(roc_auc_score(y, s))
    counts = rng.integers(0, 3, size=300).astype(float)
    rep = np.repeat(np.arange(300), counts.astype(int))
    assert weighted_auroc(s, y, counts[None])[0] == pytest.approx(roc_auc_score(y[rep], s[rep]))
    assert np.isnan(weighted_auroc(s, np.zeros(300, bool), np.ones((1, 300)))[0])


def test_the_folds_never_split_an_episode():
    groups = episodes(7, 5)
    for tr, te in episode_folds(groups, 3):
        assert not set(groups[tr]) & set(groups[te])
        assert len(tr) + len(te) == len(groups)
    with pytest.raises(StudyError, match="2 episodes"):
        episode_folds(np.zeros(5, int), 3)


def test_control_labels_are_fixed_per_step_type():
    rng = np.random.default_rng(2)
    n = 400
    a = {"task": rng.integers(0, 3, n), "category": rng.integers(0, 5, n),
         "phase": rng.integers(0, 8, n), "position": rng.random(n).astype(np.float32),
         "mistake": rng.random(n) < 0.2}
    ctl = control_labels(a, np.random.default_rng(0))
    types = a["task"] * 10 + a["category"]
    for k in ("control_phase", "control_position", "control_mistake"):
        for t in np.unique(types):
            assert len(np.unique(ctl[k][types == t])) == 1, k  # one label per type
    assert set(np.unique(ctl["control_phase"])) <= set(np.unique(a["phase"]))
    assert set(np.unique(ctl["control_position"])) <= set(np.unique(a["position"]))
    assert ctl["control_mistake"].min() != ctl["control_mistake"].max()  # an AUROC needs both


def test_the_hooks_read_the_models_own_forward():
    from annobc.models import ClickPolicy, PolicyConfig

    torch.manual_seed(0)
    cfg = PolicyConfig(screen_w=32, screen_h=24, window=3, cnn_channels=(4, 8, 8), d_model=16,
                       n_layers=2, n_heads=2, head="cells")
    model = ClickPolicy(cfg).eval()
    b, k = 5, 3
    batch = {"frames": torch.randint(0, 255, (b, k, 24, 32, 3), dtype=torch.uint8),
             "prev_xy": torch.randint(0, 20, (b, k, 2)), "bos": torch.zeros(b, k, dtype=torch.bool),
             "valid": torch.ones(b, k, dtype=torch.bool)}
    layers = ["token", "block0", "block1", "ln_f"]
    h = hidden_states(model, [batch, batch], layers)
    assert all(h[n].shape == (2 * b, 16) for n in layers)
    with torch.no_grad():
        out = model(batch)
        token = model.encoder(batch["frames"][:, -1])[0]
    np.testing.assert_allclose(h["ln_f"][:b], out.h[:, -1].numpy(), atol=1e-5)  # no target head
    np.testing.assert_allclose(h["token"][:b], token.numpy(), atol=1e-5)
    np.testing.assert_allclose(model.ln_f(torch.from_numpy(h["block1"][:b])).detach().numpy(),
                               h["ln_f"][:b], atol=1e-5)
    assert not np.allclose(h["block0"], h["block1"])
    # the hooks are gone afterwards
    assert not model.encoder._forward_hooks and not model.ln_f._forward_hooks
    assert not any(blk._forward_hooks for blk in model.blocks)


def made_up_tasks(shared: bool, T=3, eps=12, steps=10, d=24, seed=0):
    """States of T tasks whose mistake steps are shifted along one direction for all tasks
    (``shared``) or along one direction per task (orthogonal)."""
    rng = np.random.default_rng(seed)
    n_ep = T * eps
    episode = np.repeat(np.arange(n_ep), steps)
    task = episode // eps
    half = np.where(episode % eps < eps // 2, 0, 1)
    y = rng.random(len(episode)) < 0.3
    dirs = np.eye(d)[:T] if not shared else np.tile(np.eye(d)[:1], (T, 1))
    X = rng.normal(size=(len(y), d)) + 3.0 * y[:, None] * dirs[task]
    lab = {"mistake": y, "task": task, "episode": episode, "half": half}
    return X, lab


@pytest.mark.parametrize("shared", [True, False])
def test_the_shared_direction_rule(shared):
    tasks = ["a", "b", "c"]
    X, lab = made_up_tasks(shared)
    W = second_half_weights(lab, 3, 200, 0)
    r = cross_task_probes(X, lab, tasks, C, W, 200)
    auroc = np.array(r["auroc"], float)
    assert r["pairs"] == 6 and r["trained_on"] == tasks and r["tested_on"] == tasks
    assert np.diag(auroc).min() > 0.9  # within task the mistake is always decodable
    lo, hi = r["ci95"]
    assert lo <= r["mean_off_diagonal"] <= hi
    verdict = shared_verdict(r, C["shared_margin"])["verdict"]
    if shared:
        assert r["mean_off_diagonal"] > 0.9 and verdict == "holds"
        assert r["mean_off_diagonal_cosine"] > 0.6
    else:
        assert abs(r["mean_off_diagonal"] - 0.5) < 0.1 and verdict == "does not hold"
        assert abs(r["mean_off_diagonal_cosine"]) < 0.3


def test_a_task_without_mistakes_is_not_testable():
    X, lab = made_up_tasks(True)
    lab["mistake"] = lab["mistake"] & (lab["task"] == 0)  # only task a has mistakes
    r = cross_task_probes(X, lab, ["a", "b", "c"], C, second_half_weights(lab, 3, 50, 0), 50)
    assert r["pairs"] == 0 and r["trained_on"] == ["a"] and r["auroc"][1][1] is None
    assert shared_verdict(r, 0.05)["verdict"] == "not testable"


# -- end to end on a tiny emergence run -----------------------------------------------------------------
PROBES = dict(probe_checkpoints=3, probe_episodes_per_task=6, steps_per_episode=6, batch=8,
              threads=1, folds=3, bootstrap=50, min_class=1)


@pytest.fixture(scope="module")
def emergence_run(tmp_path_factory):
    # 60 episodes per task: 6 val episodes each (the probes split by episode, the cross-task probe
    # into halves)
    out = tmp_path_factory.mktemp("emergence")
    torch.set_num_threads(1)
    run_study("emergence", "micro", out, {**EMERGENCE, "episodes_per_task": 60}, progress=False)
    return out


@pytest.fixture(scope="module")
def finished(emergence_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("probes")
    return out, run_study("probes", "micro", out, {**PROBES, "emergence_dir": str(emergence_run)},
                          progress=False)


def test_runs_end_to_end_and_writes_its_report(finished, emergence_run):
    out, res = finished
    assert res["steps"] == [1, 3, 8]  # 3 of the emergence run's 5 checkpoints
    assert res["layers"] == ["token", "block0", "ln_f"]  # the tiny model has one block
    assert set(res["by_model"]) == {"step-0000001", "step-0000003", "step-0000008", RANDOM}
    assert res["samples"]["episodes"] == 12 and res["samples"]["steps"] >= 12 * 6
    assert res["samples"]["by_task"]["colored_dot_tracking"]["episodes"] == 6
    for n in res["layers"]:
        for latent in ("phase", "position", "mistake"):
            e = res["final"][n][latent]
            assert e["verdict"] in ("holds", "does not hold", "not testable")
            assert res["decodable_from"][n][latent]["status"] in ("measured", "not decodable")
        x = res["cross_task"]["by_layer"][n]
        assert len(x["trained"]["auroc"]) == 2 and len(x["trained"]["auroc"][0]) == 2
        assert x["verdict"] in ("holds", "does not hold", "not testable")
    for e in res["final"]["ln_f"].values():  # the verdict's parts are the reported figures
        assert e["verdict"] != "holds" or (e["excess"]["ci95"][0] > 0 and e["vs_random"]["ci95"][0] > 0)
    phase = res["by_model"]["step-0000008"]["ln_f"]["phase"]
    assert 0 <= phase["value"] <= 1 and phase["selectivity"] == pytest.approx(phase["value"] - phase["control"])
    prov = res["provenance"]
    assert prov["emergence_dir"] == str(emergence_run) and len(prov["dataset_card_sha256"]) == 64
    assert prov["checkpoint_steps"] == [1, 2, 3, 5, 8] and prov["sklearn_version"]
    assert set(res["verdicts"]["decodable"]) == {"phase", "position", "mistake"}
    report = (out / "report.md").read_text()
    for png in ("probes_by_layer.png", "probes_by_step.png", "cross_task_mistake.png"):
        assert f"({png})" in report and (out / png).stat().st_size > 1000
    units = {p.stem for p in (out / "units").glob("*.json")}
    assert units == {"source", "samples", "cross-task-step-0000008", "cross-task-random",
                     *[f"{u}-{k}" for u in ("features", "probes") for k in res["by_model"]]}
    # it trained nothing and wrote nothing into the emergence folder
    assert res["units"]["trained"] == [] and not (emergence_run / "units" / "source.json").exists()


def test_every_table_figure_of_the_report_is_in_results_json(finished):
    out, _ = finished
    assert check_report_figures(out) > 100


def test_without_the_emergence_run_it_says_to_run_it_first(tmp_path):
    with pytest.raises(StudyError, match="run `annobc study emergence --scale micro` first"):
        run_study("probes", "micro", tmp_path / "p", {**PROBES, "emergence_dir": str(tmp_path / "none")},
                  progress=False)


def test_a_killed_study_reuses_its_finished_units(tmp_path, finished, emergence_run):
    settings = {**PROBES, "emergence_dir": str(emergence_run)}
    with pytest.raises(UnitLimit):
        run_study("probes", "micro", tmp_path, settings, progress=False, max_new_units=3)
    units = tmp_path / "units"
    assert {p.stem for p in units.glob("*.json")} == {"source", "samples", "features-step-0000001"}
    marks = {p: p.stat().st_mtime_ns for p in units.iterdir()}
    res = run_study("probes", "micro", tmp_path, settings, progress=False)
    assert {"source", "samples", "features-step-0000001"} <= set(res["units"]["reused"])
    assert "probes-step-0000001" in res["units"]["computed"]
    assert "features-step-0000001" not in res["units"]["computed"]
    assert all(p.stat().st_mtime_ns == t for p, t in marks.items())
    # the same figures as an uninterrupted run
    _, whole = finished
    assert res["final"] == whole["final"] and res["cross_task"] == whole["cross_task"]
    again = run_study("probes", "micro", tmp_path, settings, progress=False)
    assert again["units"]["computed"] == [] and again["decodable_from"] == res["decodable_from"]
    # a changed emergence run is refused, not mixed with the units of the old one
    src = json.loads((units / "source.json").read_text())
    src["dataset_card_sha256"] = "0" * 64
    (units / "source.json").write_text(json.dumps(src))
    with pytest.raises(StudyError, match="changed"):
        run_study("probes", "micro", tmp_path, settings, progress=False)
