"""``annobc study probes``: finding 4 of the study. The hidden states encode the task phase, the
position in the data and whether a mistake is present; the mistake along a direction shared by the
tasks.

It trains nothing. It reads the emergence study's finished run (setting ``emergence_dir``, default
``runs/study/emergence-SCALE``) and finds its dataset and kept checkpoints as emergence.py does:
the folder's ``study.json`` settings give the log-spaced schedule (``emergence.plan_runs``), the
run is ``<emergence_dir>/runs/<run>`` of its ``train-policy`` unit, the data ``<emergence_dir>/data``.
Without a finished training unit there it stops with one line: run ``annobc study emergence``
first. A rerun whose emergence run changed (another dataset or other checkpoints) is refused.

**States.** On held-out val episodes (the first ``probe_episodes_per_task`` of each task,
``steps_per_episode`` demonstrated steps of each drawn at random, and up to
``mistake_steps_per_episode`` more with a mistake present, which are rare; the same steps for every
model), the window ending at each step is run through the policy and the states at its last step
are read through forward hooks, never a re-implemented forward: ``token`` (the encoder's frame token),
``block<i>`` (each transformer block's output) and ``ln_f`` (the final LayerNorm: what the click
heads read). Models: ``probe_checkpoints`` of the run's checkpoints (spread over the schedule,
first and last included) and a randomly initialised model of the same architecture (``random``).

**Probes**, linear, on standardised states, split by episode (GroupKFold, ``folds``), never by
step; out-of-fold predictions of every step:

- ``phase``: multinomial logistic regression; accuracy, against the majority class of the train
  folds;
- ``position`` (where in the data axis the view is, 0..1): ridge regression; R^2, against the
  train folds' mean;
- ``mistake`` (``mistake_present``: a wrong annotation exists before this click): logistic
  regression; AUROC, against 0.5.

**Controls.** The same probes on the random-init model; and control tasks (Hewitt and Liang,
2019): each step type, a (task, click category) pair, gets one label drawn at random from the
latent's distribution over the probed steps, fixed per type. A probe that only memorises step types
does as well on the control task as on the latent; **selectivity** = the latent's metric minus the
control task's.

**Cross-task mistake probe** (the last checkpoint and the random-init model): the episodes of each
task are split in halves; a probe trained on task A's first half is tested on every task B's second
half (a T x T AUROC matrix; diagonal: within task), and the cosine similarities of the per-task
probe directions (one standardisation for all tasks, so the directions share coordinates).

**Verdicts**, at ``verdict_layer`` (declared before the numbers: ``ln_f`` by default), with 95%
bootstrap intervals over val episodes (resampled within each task; paired: the same resamples for
every model, probe and control; the probes are not refit, so the intervals cover the test
episodes' variability only):

- a latent *is linearly decodable* at the last checkpoint when two lower bounds are above zero:
  metric minus baseline, and trained minus random-init; stated beside it, whether it is
  *selective*: selectivity's lower bound above zero (more than the step type tells);
- *the mistake direction is shared* when the mean off-diagonal AUROC (over the task pairs A != B
  where both are testable: ``min_class`` steps of each class on both sides) has its lower bound
  above 0.5 + ``shared_margin``; how many pairs are above that mark is stated beside it;
- *when each latent becomes decodable*: the step at which its metric's excess over the baseline
  reaches ``reach_fraction`` of its final value (emergence.py's rule, interpolated in log(step)),
  with a bootstrap interval; ``not decodable`` where the final excess's lower bound is not above 0.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np

from annobc.study.common import (code_text, Study, StudyError, atomic_save_npz, bootstrap_weights, card_sha256,
                                 checkpoint_dir, ci_int, num, percentile_ci, provenance,
                                 pyplot, reach_step, spread, table, tasks_of, write_outputs)

LATENTS = ("phase", "position", "mistake")
METRIC = {"phase": "accuracy", "position": "R^2", "mistake": "AUROC"}
BASELINE = {"phase": "majority class", "position": "train mean", "mistake": "0.5"}
RANDOM = "random"  # the randomly initialised model's key


def model_key(step: int) -> str:
    return f"step-{step:07d}"


def layer_names(model_config: dict) -> list[str]:
    return ["token", *[f"block{i}" for i in range(int(model_config["n_layers"]))], "ln_f"]


# -- the emergence run it reads ------------------------------------------------------------------------
def emergence_study(study: Study) -> tuple[Study, bool]:
    """The emergence study of ``emergence_dir`` (its study.json's settings) and whether it exists;
    else, for planning, the emergence preset at this scale."""
    from annobc.study.common import study_settings

    edir = Path(study.cfg["emergence_dir"])
    path = edir / "study.json"
    if path.exists():
        meta = json.loads(path.read_text())
        if meta.get("study") != "emergence":
            raise StudyError(f"{edir} holds study {meta.get('study')!r}, not emergence; set "
                             f"emergence_dir to an emergence study's folder")
        return Study("emergence", meta["scale"], edir, meta["settings"], progress=False), True
    return Study("emergence", study.scale, edir, study_settings("emergence", study.scale),
                 progress=False), False


def emergence_source(study: Study) -> dict:
    """What this study reads of the emergence run: dataset, run folder, checkpoint schedule, model;
    a one-line StudyError where the run is missing or unfinished."""
    from annobc.study import emergence

    edir = Path(study.cfg["emergence_dir"])
    hint = (f"run `annobc study emergence --scale {study.scale}` first "
            f"(or --set emergence_dir=DIR)")
    estudy, found = emergence_study(study)
    if not found:
        raise StudyError(f"no emergence study in {edir}: {hint}")
    unit = estudy.unit_path("train-policy")
    if not unit.exists() or not (edir / "data" / "dataset.json").exists():
        raise StudyError(f"the emergence study in {edir} has not finished training "
                         f"(no units/train-policy.json): {hint}")
    tr = json.loads(unit.read_text())
    run_dir = edir / "runs" / tr["run"]  # the emergence folder's layout, wherever it was run from
    steps = emergence.plan_runs(estudy)["checkpoint_steps"]
    missing = [s for s in steps if not (checkpoint_dir(run_dir, s) / "state.json").exists()]
    if missing:
        raise StudyError(f"the emergence run {run_dir} lacks the checkpoints of steps {missing}: {hint}")
    if len(steps) < 2:
        raise StudyError(f"the emergence run's schedule needs at least 2 checkpoints, got {steps}")
    state = json.loads((checkpoint_dir(run_dir, steps[-1]) / "state.json").read_text())
    return {"emergence_dir": str(edir), "emergence_scale": estudy.scale,
            "emergence_settings_sha256": hashlib.sha256(
                json.dumps(estudy.cfg, sort_keys=True).encode()).hexdigest(),
            "dataset": str(edir / "data"), "dataset_card_sha256": card_sha256(edir / "data"),
            "run_dir": str(run_dir), "tasks": list(tasks_of(estudy.cfg["tasks"])),
            "checkpoint_steps": steps, "probed_steps": spread(steps, study.cfg["probe_checkpoints"]),
            "model_config": state["model_config"], "model_params": tr["params"],
            "train_steps": tr["step"],
            # the checkpoints' states (step, model config, data position): another run differs
            "checkpoint_sha256": {str(s): hashlib.sha256(
                (checkpoint_dir(run_dir, s) / "state.json").read_bytes()).hexdigest()[:16]
                for s in steps}}


def check_source(study: Study, current: dict) -> dict:
    """The ``source`` unit: what the finished units were computed from; refuses a changed run."""
    stored = study.unit("source", lambda: current)
    changed = sorted(k for k in current if k not in ("emergence_dir", "run_dir", "dataset")
                     and json.loads(json.dumps(current[k])) != stored.get(k))
    if changed:
        raise StudyError(f"the emergence run in {current['emergence_dir']} changed since this study's "
                         f"units were computed ({', '.join(changed)}); use another --out")
    return current


def plan_runs(study: Study) -> dict:
    """The units without running them: the emergence run it reads (its parsed training config, for
    the model and cost), the models probed, the windows each is run on."""
    from annobc.study import emergence

    c = study.cfg
    estudy, found = emergence_study(study)
    eplan = emergence.plan_runs(estudy)
    steps = eplan["checkpoint_steps"]
    probed = spread(steps, c["probe_checkpoints"])
    tasks = tasks_of(estudy.cfg["tasks"])
    keys = [model_key(s) for s in probed] + [RANDOM]
    read = {**eplan["train"][0], "study": "emergence", "emergence_dir": str(estudy.out),
            "found": found, "screen": estudy.cfg["screen"]}
    # at most: every probed episode with its added mistake steps
    windows = len(tasks) * c["probe_episodes_per_task"] * (c["steps_per_episode"] + c["mistake_steps_per_episode"])
    return {"datasets": [], "train": [], "reads": [read], "checkpoint_steps": steps,
            "probed_steps": probed, "tasks": list(tasks),
            "evaluation_load": {"tf_windows": len(keys) * windows},
            "evaluations": (["source", "samples"] + [f"{u}-{k}" for k in keys for u in ("features", "probes")]
                            + [f"cross-task-{model_key(probed[-1])}", f"cross-task-{RANDOM}"])}


# -- the study ---------------------------------------------------------------------------------------------
def run(study: Study) -> dict:
    from annobc.data import EpisodeStore

    c = study.cfg
    src = check_source(study, emergence_source(study))
    layers = layer_names(src["model_config"])
    if c["verdict_layer"] not in layers:
        raise StudyError(f"verdict_layer {c['verdict_layer']!r} is not a layer of this model "
                         f"({', '.join(layers)})")
    store = EpisodeStore(src["dataset"])
    tasks = src["tasks"]
    steps = src["probed_steps"]
    final = model_key(steps[-1])
    samples = study.unit("samples", lambda: samples_unit(study, store, tasks))
    lab = load_npz(study, samples["arrays"])
    keys = [model_key(s) for s in steps] + [RANDOM]
    feats, probes = {}, {}
    bar = study.bar(len(keys), "features and probes", "model")
    for key in keys:
        feats[key] = study.unit(f"features-{key}",
                                lambda key=key: features_unit(study, store, src, samples, lab, key, layers))
        probes[key] = study.unit(f"probes-{key}", lambda key=key: probe_unit(study, lab, key, layers))
        bar.update(1)
    bar.close()
    cross = {who: study.unit(f"cross-task-{key}", lambda key=key: cross_task_unit(study, lab, key, layers, tasks))
             for who, key in (("trained", final), (RANDOM, RANDOM))}

    # -- analysis ------------------------------------------------------------------------------------------
    rng = np.random.default_rng([c["seed"], 2])
    W = episode_weights(lab, int(c["bootstrap"]), rng)
    preds = {k: load_npz(study, probes[k]["predictions"]) for k in keys}
    folds = episode_folds(lab["episode"], c["folds"])  # the probes' folds (deterministic)
    bases = {latent: baseline_predictions(latent, lab[latent], folds) for latent in LATENTS}
    final_cmp = compare_final(lab, preds[final], preds[RANDOM], bases, layers, W)
    decodable = decodable_from(lab, [preds[model_key(s)] for s in steps], bases, steps, layers, W,
                               float(c["reach_fraction"]))
    shared = compare_cross_task(study, cross, layers, tasks, float(c["shared_margin"]))
    results = {
        "study": "probes", "scale": study.scale,
        "provenance": provenance(
            study, emergence_dir=src["emergence_dir"], emergence_scale=src["emergence_scale"],
            dataset=src["dataset"], dataset_card_sha256=src["dataset_card_sha256"],
            run_dir=src["run_dir"], model_params=src["model_params"], train_steps=src["train_steps"],
            checkpoint_steps=src["checkpoint_steps"], probed_steps=steps, layers=layers,
            sklearn_version=sklearn_version(),
            seeds={"samples_seed": c["seed"], "control_task_seed": c["seed"],
                   "random_init_seed": c["seed"], "bootstrap_seed": c["seed"]},
            split="val", bootstrap_reps=int(c["bootstrap"])),
        "tasks": tasks, "layers": layers, "state_dims": feats[final]["dims"], "steps": steps,
        "samples": samples["summary"],
        "by_model": {k: probes[k]["by_layer"] for k in keys},
        "final": final_cmp, "decodable_from": decodable, "cross_task": shared,
    }
    results["verdicts"] = verdict_summary(results, c["verdict_layer"])
    lines = report(results, study.out)
    write_outputs(study.out, results, lines)
    return results


def sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def load_npz(study: Study, name: str) -> dict[str, np.ndarray]:
    with np.load(study.out / "units" / name) as z:
        return {k: z[k] for k in z.files}


# -- samples: the probed steps, their latents and control labels ------------------------------------------
def samples_unit(study: Study, store, tasks: list[str]) -> dict:
    """The probed steps of the val split: per task its first ``probe_episodes_per_task`` episodes,
    ``steps_per_episode`` demonstrated steps of each at random and, besides, up to
    ``mistake_steps_per_episode`` of its other steps with a mistake present (rare: a few steps of
    some episodes, too few for a mistake probe otherwise; AUROC does not depend on the classes'
    balance); their
    latents, step types, control-task labels, and each episode's half for the cross-task probe."""
    from annobc.data.windows import CATEGORY_INDEX, PHASE_INDEX, imitated

    c = study.cfg
    rng = np.random.default_rng([c["seed"], 1])
    cols = {k: [] for k in ("task", "episode", "step", "phase", "position", "mistake", "category",
                            "half", "extra")}
    eids: list[str] = []
    for ti, t in enumerate(tasks):
        ids = store.episode_ids("val", [t])[: int(c["probe_episodes_per_task"])]
        first = set(rng.permutation(len(ids))[: len(ids) // 2].tolist())  # the probe-train half
        for j, eid in enumerate(ids):
            st = store.steps(eid)
            ends = np.flatnonzero(imitated(st))
            uniform = rng.choice(ends, min(len(ends), int(c["steps_per_episode"])), replace=False)
            more = np.setdiff1d(ends[np.asarray(st["mistake_present"], bool)[ends]], uniform)
            extra = rng.choice(more, min(len(more), int(c["mistake_steps_per_episode"])), replace=False)
            pick = np.sort(np.concatenate([uniform, extra]).astype(np.int64))
            labelled = np.asarray(st["label_x"])[pick] >= 0  # a DAgger label is the step's click
            category = np.where(labelled, st["label_category"][pick], st["category"][pick])
            n = len(pick)
            cols["task"].append(np.full(n, ti))
            cols["episode"].append(np.full(n, len(eids)))
            cols["step"].append(pick)
            cols["phase"].append([PHASE_INDEX[p] for p in st["phase"][pick]])
            cols["position"].append(st["position"][pick])
            cols["mistake"].append(st["mistake_present"][pick])
            cols["category"].append([CATEGORY_INDEX[x] for x in category])
            cols["half"].append(np.full(n, 0 if j in first else 1))
            cols["extra"].append(np.isin(pick, extra))
            eids.append(eid)
    if not eids:
        raise StudyError(f"no val episodes of tasks {tasks} in {store.root}")
    dtypes = {"task": np.int16, "episode": np.int32, "step": np.int32, "phase": np.int8,
              "position": np.float32, "mistake": bool, "category": np.int8, "half": np.int8,
              "extra": bool}
    arrays = {k: np.concatenate([np.asarray(v) for v in cols[k]]).astype(dtypes[k]) for k in cols}
    arrays.update(control_labels(arrays, rng))
    atomic_save_npz(study.out / "units" / "samples.npz", **arrays)
    return {"arrays": "samples.npz", "episode_ids": eids, "summary": samples_summary(arrays, tasks)}


def control_labels(a: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Hewitt and Liang's control tasks: each step type (task, click category) gets one label drawn
    from the latent's distribution over the probed steps, fixed per type."""
    types = np.stack([a["task"].astype(int), a["category"].astype(int)], 1)
    _, inverse = np.unique(types, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    m = int(inverse.max()) + 1
    out = {"control_phase": rng.choice(a["phase"], m)[inverse].astype(np.int8),
           "control_position": rng.choice(a["position"], m)[inverse].astype(np.float32)}
    rate = float(a["mistake"].mean())
    # Redrawn until both classes occur, where the latent has both: an AUROC needs them.
    for _ in range(1000):
        lab = (rng.random(m) < rate)[inverse]
        if lab.min() != lab.max() or a["mistake"].min() == a["mistake"].max() or m < 2:
            break
    out["control_mistake"] = lab
    return out


def samples_summary(a: dict[str, np.ndarray], tasks: list[str]) -> dict:
    from annobc.tasks.base import PHASES

    by_task = {}
    for ti, t in enumerate(tasks):
        m = a["task"] == ti
        by_task[t] = {"episodes": int(len(np.unique(a["episode"][m]))), "steps": int(m.sum()),
                      "mistake_steps": int(a["mistake"][m].sum()),
                      "extra_mistake_steps": int(a["extra"][m].sum()),
                      "phases": int(len(np.unique(a["phase"][m]))),
                      "step_types": int(len(np.unique(a["category"][m])))}
    return {"steps": int(len(a["task"])), "episodes": int(len(np.unique(a["episode"]))),
            "mistake_steps": int(a["mistake"].sum()), "extra_mistake_steps": int(a["extra"].sum()),
            "phase_counts": {PHASES[i]: int((a["phase"] == i).sum()) for i in np.unique(a["phase"])},
            "by_task": by_task}


# -- hidden states ---------------------------------------------------------------------------------------
def hidden_states(model, batches, layers: list[str]) -> dict[str, np.ndarray]:
    """The states of ``layers`` at each window's last step, over ``batches``, read through forward
    hooks on the encoder (its output's frame token), each transformer block and the final
    LayerNorm: what the model's own forward computes, nothing re-implemented."""
    import torch

    modules = {"token": model.encoder, "ln_f": model.ln_f,
               **{f"block{i}": blk for i, blk in enumerate(model.blocks)}}
    seen: dict = {}

    def keep(name):
        def hook(module, inputs, output):
            seen[name] = output[0] if name == "token" else output  # the encoder gives (token, cells)
        return hook

    handles = [modules[n].register_forward_hook(keep(n)) for n in layers]
    out: dict[str, list] = {n: [] for n in layers}
    try:
        with torch.no_grad():
            for batch in batches:
                b, k = batch["frames"].shape[:2]
                seen.clear()
                model(batch)
                for n in layers:  # token: (b*k, d); the others (b, k, d)
                    out[n].append(seen[n].reshape(b, k, -1)[:, -1].float().cpu().numpy())
    finally:
        for h in handles:
            h.remove()
    return {n: np.concatenate(v) for n, v in out.items()}


def window_batches(store, episode_ids: list[str], episode: np.ndarray, step: np.ndarray, window: int,
                   batch_size: int, device, bar=None):
    """The windows ending at the probed steps, in the samples' order, as batches of the tensors the
    model reads; each episode replayed once."""
    import torch

    from annobc.data.windows import EpisodeWindows

    def collate(ws):
        return {k: torch.from_numpy(np.stack([w[k] for w in ws])).to(device)
                for k in ("frames", "prev_xy", "bos", "valid")}

    buf = []
    starts = np.flatnonzero(np.r_[True, episode[1:] != episode[:-1]])
    for lo, hi in zip(starts, np.r_[starts[1:], len(episode)]):
        ew = EpisodeWindows.from_store(store, episode_ids[int(episode[lo])])
        for t in step[lo:hi]:
            buf.append(ew.window(int(t), window))
            if len(buf) == batch_size:
                yield collate(buf)
                if bar is not None:
                    bar.update(len(buf))
                buf = []
    if buf:
        yield collate(buf)
        if bar is not None:
            bar.update(len(buf))


def probed_model(study: Study, src: dict, key: str):
    """A probed checkpoint, or (``random``) the same architecture at a seeded random init."""
    import torch

    from annobc.learning.checkpoint import load_policy
    from annobc.models import ClickPolicy, PolicyConfig

    c = study.cfg
    if key != RANDOM:
        model, _ = load_policy(checkpoint_dir(src["run_dir"], int(key.split("-")[1])), c["device"])
        return model
    torch.manual_seed(int(c["seed"]))
    return ClickPolicy(PolicyConfig.from_dict(src["model_config"])).to(c["device"]).eval()


def features_unit(study: Study, store, src: dict, samples: dict, lab: dict, key: str,
                  layers: list[str]) -> dict:
    c = study.cfg
    model = probed_model(study, src, key)
    bar = study.bar(len(lab["step"]), f"states {key}", "window")
    feats = hidden_states(model, window_batches(store, samples["episode_ids"], lab["episode"],
                                                lab["step"], model.cfg.window, int(c["batch"]),
                                                c["device"], bar), layers)
    bar.close()
    name = f"features-{key}.npz"
    atomic_save_npz(study.out / "units" / name, **{n: compact(v) for n, v in feats.items()})
    return {"model": key, "features": name, "steps": int(len(lab["step"])), "layers": layers,
            "dims": {n: int(v.shape[1]) for n, v in feats.items()},
            "checkpoint": None if key == RANDOM else str(checkpoint_dir(src["run_dir"], int(key.split("-")[1])))}


def compact(x: np.ndarray) -> np.ndarray:
    """float16 where it holds the states exactly enough (no overflow), else float32."""
    if not np.isfinite(x).all():
        raise StudyError("non-finite hidden states")
    return x.astype(np.float16) if np.abs(x).max() < 6e4 else x.astype(np.float32)


# -- probes ----------------------------------------------------------------------------------------------
def episode_folds(groups: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs, whole episodes on one side (GroupKFold)."""
    from sklearn.model_selection import GroupKFold

    k = min(int(folds), len(np.unique(groups)))
    if k < 2:
        raise StudyError(f"probes split by episode need at least 2 episodes, got {k}")
    return list(GroupKFold(n_splits=k).split(np.zeros(len(groups)), groups=groups))


def fit_probe(latent: str, X: np.ndarray, y: np.ndarray, c: dict):
    """A linear probe on standardised states: logistic regression (phase, mistake) or ridge
    (position); None where the labels hold one class only."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if latent != "position" and len(np.unique(y)) < 2:
        return None
    head = (Ridge(alpha=float(c["ridge_alpha"])) if latent == "position"
            else LogisticRegression(C=float(c["probe_c"]), max_iter=int(c["probe_max_iter"])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # counted by the caller (n_iter_)
        return make_pipeline(StandardScaler(), head).fit(X, y)


def predict_probe(latent: str, probe, X: np.ndarray, y_train: np.ndarray) -> np.ndarray:
    """Phase: the class; position: the value; mistake: the decision score. A probe that could not
    be fitted (one class) predicts that class (score 0)."""
    if probe is None:
        if latent == "phase":
            return np.full(len(X), y_train[0])
        return np.zeros(len(X))
    return probe.decision_function(X) if latent == "mistake" else probe.predict(X)


def not_converged(probe, c: dict) -> int:
    iters = None if probe is None else getattr(probe[-1], "n_iter_", None)  # ridge: None (direct)
    return 0 if iters is None else int(np.max(iters) >= int(c["probe_max_iter"]))


def out_of_fold(latent: str, X: np.ndarray, y: np.ndarray, folds, c: dict) -> tuple[np.ndarray, int]:
    """Every step's prediction by the probe fitted on the other folds' episodes; and how many of
    the fits stopped at ``probe_max_iter``."""
    pred = np.zeros(len(y), np.float64)
    stuck = 0
    for tr, te in folds:
        probe = fit_probe(latent, X[tr], y[tr], c)
        pred[te] = predict_probe(latent, probe, X[te], y[tr])
        stuck += not_converged(probe, c)
    return pred, stuck


def baseline_predictions(latent: str, y: np.ndarray, folds) -> np.ndarray:
    """What the labels alone predict: the train folds' majority phase, mean position; the mistake
    baseline is a constant score (AUROC 0.5)."""
    pred = np.zeros(len(y), np.float64)
    for tr, te in folds:
        if latent == "phase":
            values, counts = np.unique(y[tr], return_counts=True)
            pred[te] = values[np.argmax(counts)]
        elif latent == "position":
            pred[te] = y[tr].mean()
    return pred


def metric(latent: str, y: np.ndarray, pred: np.ndarray, W: np.ndarray | None = None) -> np.ndarray:
    """The probe's metric under sample weights ``W`` (reps, n) (None: one unweighted value, as
    shape (1,)): phase accuracy, position R^2, mistake AUROC; NaN where undefined."""
    y = np.asarray(y, np.float64)
    W = np.ones((1, len(y))) if W is None else W
    tot = W.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if latent == "phase":
            return (W @ (pred == y)) / tot
        if latent == "position":
            mean = (W @ y) / tot
            sst = (W * (y[None] - mean[:, None]) ** 2).sum(1)
            return 1.0 - (W @ (y - pred) ** 2) / sst
    return weighted_auroc(pred, y.astype(bool), W)


def weighted_auroc(scores: np.ndarray, labels: np.ndarray, W: np.ndarray) -> np.ndarray:
    """AUROC under sample weights (reps, n): the weighted probability that a positive scores above
    a negative, ties counted half (unweighted: sklearn's roc_auc_score)."""
    order = np.argsort(scores, kind="stable")
    s, y, Wo = scores[order], labels[order], W[:, order]
    _, start = np.unique(s, return_index=True)  # runs of equal scores
    pos = np.add.reduceat(Wo * y, start, axis=1)  # (reps, distinct scores)
    neg = np.add.reduceat(Wo * ~y, start, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(1) / (pos.sum(1) * neg.sum(1))


def baseline_metric(latent: str, y: np.ndarray, base: np.ndarray, W=None) -> np.ndarray:
    if latent == "mistake":
        return np.full(1 if W is None else len(W), 0.5)
    return metric(latent, y, base, W)


def probe_layer(X: np.ndarray, lab: dict[str, np.ndarray], folds, c: dict) -> tuple[dict, dict]:
    """Every latent's and control task's probe on one layer's states: figures and out-of-fold
    predictions."""
    figures, preds = {}, {}
    stuck = 0
    for latent in LATENTS:
        y, yc = lab[latent], lab[f"control_{latent}"]
        p, s1 = out_of_fold(latent, X, y, folds, c)
        pc, s2 = out_of_fold(latent, X, yc, folds, c)
        stuck += s1 + s2
        preds[latent], preds[f"control_{latent}"] = p, pc
        value, control = finite(metric(latent, y, p)[0]), finite(metric(latent, yc, pc)[0])
        base = finite(baseline_metric(latent, y, baseline_predictions(latent, y, folds))[0])
        figures[latent] = {"value": value, "baseline": base, "control": control,
                           "selectivity": None if value is None or control is None else value - control,
                           "excess": None if value is None or base is None else value - base}
    figures["fits_not_converged"] = stuck
    return figures, preds


def finite(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


def probe_unit(study: Study, lab: dict[str, np.ndarray], key: str, layers: list[str]) -> dict:
    from threadpoolctl import threadpool_limits

    c = study.cfg
    feats = load_npz(study, f"features-{key}.npz")
    folds = episode_folds(lab["episode"], c["folds"])
    by_layer, arrays = {}, {}
    bar = study.bar(len(layers), f"probes {key}", "layer")
    with threadpool_limits(int(c["threads"]) or None):
        for n in layers:
            by_layer[n], preds = probe_layer(feats[n].astype(np.float32), lab, folds, c)
            arrays.update({f"{n}__{k}": v.astype(np.float32) for k, v in preds.items()})
            bar.update(1)
    bar.close()
    name = f"probes-{key}.npz"
    atomic_save_npz(study.out / "units" / name, **arrays)
    return {"model": key, "folds": len(folds), "predictions": name, "by_layer": by_layer}


# -- the cross-task mistake probe ----------------------------------------------------------------------------
def cross_task_probes(X: np.ndarray, lab: dict[str, np.ndarray], tasks: list[str], c: dict,
                      W_test: dict[int, np.ndarray], reps: int) -> dict:
    """Mistake probes trained on each task's first half of episodes, tested on every task's second
    half: the AUROC matrix (row: trained on, column: tested on; None where a side lacks
    ``min_class`` steps of each class), the cosines of the probe directions, and the mean
    off-diagonal AUROC with its bootstrap samples (``W_test``: per task, (reps, its test steps)
    weights)."""
    from sklearn.preprocessing import StandardScaler

    T, y, task = len(tasks), lab["mistake"].astype(bool), lab["task"]
    train, test = lab["half"] == 0, lab["half"] == 1
    if not train.any():
        return empty_cross_task(T, reps)
    Z = StandardScaler().fit(X[train]).transform(X)  # one scale for all tasks: comparable directions

    def enough(m):
        return min(int(y[m].sum()), int((~y[m]).sum())) >= int(c["min_class"])

    directions = {}
    for a in range(T):
        m = train & (task == a)
        if enough(m):
            probe = fit_probe("mistake", Z[m], y[m], c)
            w = probe[-1].coef_[0] / probe[0].scale_  # the probe's own scaler undone: Z's coordinates
            directions[a] = (probe, w / np.linalg.norm(w))
    tested = [b for b in range(T) if enough(test & (task == b))]
    auroc = [[None] * T for _ in range(T)]
    cosine = [[None] * T for _ in range(T)]
    boot_pairs = []
    for a, (probe, w) in directions.items():
        for b in tested:
            m = test & (task == b)
            s = probe.decision_function(Z[m])
            auroc[a][b] = finite(weighted_auroc(s, y[m], np.ones((1, int(m.sum()))))[0])
            if a != b:
                boot_pairs.append(weighted_auroc(s, y[m], W_test[b]))
        for a2, (_, w2) in directions.items():
            cosine[a][a2] = float(w @ w2)
    off = [auroc[a][b] for a in directions for b in tested if a != b]
    diag = [auroc[a][a] for a in directions if a in tested]
    off_cos = [cosine[a][b] for a in directions for b in directions if a != b]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample without a class: NaN, dropped
        boot = np.nanmean(np.stack(boot_pairs), 0) if boot_pairs else np.full(reps, np.nan)
    return {"auroc": auroc, "cosine": cosine, "trained_on": [tasks[a] for a in directions],
            "tested_on": [tasks[b] for b in tested], "pairs": len(off),
            "mean_off_diagonal": float(np.mean(off)) if off else None,
            "ci95": percentile_ci(boot) if off else None,
            "pairs_above_margin": int(sum(v > 0.5 + float(c["shared_margin"]) for v in off)),
            "mean_diagonal": float(np.mean(diag)) if diag else None,
            "mean_off_diagonal_cosine": float(np.mean(off_cos)) if off_cos else None,
            "boot": boot}


def empty_cross_task(T: int, reps: int) -> dict:
    return {"auroc": [[None] * T for _ in range(T)], "cosine": [[None] * T for _ in range(T)],
            "trained_on": [], "tested_on": [], "pairs": 0, "mean_off_diagonal": None, "ci95": None,
            "pairs_above_margin": 0, "mean_diagonal": None, "mean_off_diagonal_cosine": None,
            "boot": np.full(reps, np.nan)}


def second_half_weights(lab: dict[str, np.ndarray], T: int, reps: int, seed) -> dict[int, np.ndarray]:
    """Bootstrap weights of each task's second-half steps, (reps, steps), whole episodes resampled;
    the same for every model and layer (paired)."""
    rng = np.random.default_rng(seed)
    out = {}
    for b in range(T):
        m = (lab["half"] == 1) & (lab["task"] == b)
        eps, local = np.unique(lab["episode"][m], return_inverse=True)
        out[b] = bootstrap_weights(len(eps), reps, rng)[:, local.reshape(-1)] if len(eps) else np.zeros((reps, 0))
    return out


def cross_task_unit(study: Study, lab: dict[str, np.ndarray], key: str, layers: list[str],
                    tasks: list[str]) -> dict:
    from threadpoolctl import threadpool_limits

    c = study.cfg
    feats = load_npz(study, f"features-{key}.npz")
    W_test = second_half_weights(lab, len(tasks), int(c["bootstrap"]), [c["seed"], 3])
    by_layer, boots = {}, {}
    with threadpool_limits(int(c["threads"]) or None):
        for n in layers:
            r = cross_task_probes(feats[n].astype(np.float32), lab, tasks, c, W_test, int(c["bootstrap"]))
            boots[n] = r.pop("boot")
            by_layer[n] = r
    name = f"cross-task-{key}.npz"
    atomic_save_npz(study.out / "units" / name, **boots)
    return {"model": key, "tasks": tasks, "boot": name, "by_layer": by_layer}


# -- analysis ----------------------------------------------------------------------------------------------
def episode_weights(lab: dict[str, np.ndarray], reps: int, rng) -> np.ndarray:
    """(reps, steps) bootstrap weights: episodes resampled within each task, a step weighing as its
    episode; the same resamples for every model (paired)."""
    W = np.zeros((reps, len(lab["episode"])))
    for ti in np.unique(lab["task"]):
        m = lab["task"] == ti
        eps, local = np.unique(lab["episode"][m], return_inverse=True)
        W[:, m] = bootstrap_weights(len(eps), reps, rng)[:, local.reshape(-1)]
    return W


def with_ci(point, boot) -> dict:
    return {"value": finite(point), "ci95": percentile_ci(boot)}


def latent_curves(lab, preds: dict, bases: dict, layer: str, latent: str, W) -> dict:
    """A model's metric, control-task metric and baseline on one layer: (point value, bootstrap
    samples) each. ``bases``: the baseline's out-of-fold predictions per latent."""
    y, yc, base = lab[latent], lab[f"control_{latent}"], bases[latent]
    p, pc = preds[f"{layer}__{latent}"], preds[f"{layer}__control_{latent}"]
    return {"value": (metric(latent, y, p)[0], metric(latent, y, p, W)),
            "control": (metric(latent, yc, pc)[0], metric(latent, yc, pc, W)),
            "baseline": (baseline_metric(latent, y, base)[0], baseline_metric(latent, y, base, W))}


def compare_final(lab, trained: dict, random: dict, bases: dict, layers: list[str], W) -> dict:
    """Per layer and latent at the last checkpoint: the metric, the random-init model's, the control
    task's, the baseline, selectivity, trained minus random, excess over the baseline (95% paired
    bootstrap intervals), and the decodability verdict."""
    out = {}
    for n in layers:
        out[n] = {}
        for latent in LATENTS:
            t = latent_curves(lab, trained, bases, n, latent, W)
            r = latent_curves(lab, random, bases, n, latent, W)
            diffs = {"selectivity": (t["value"][0] - t["control"][0], t["value"][1] - t["control"][1]),
                     "vs_random": (t["value"][0] - r["value"][0], t["value"][1] - r["value"][1]),
                     "excess": (t["value"][0] - t["baseline"][0], t["value"][1] - t["baseline"][1])}
            e = {"trained": with_ci(*t["value"]), "random": with_ci(*r["value"]),
                 "control": with_ci(*t["control"]), "baseline": with_ci(*t["baseline"]),
                 "random_selectivity": finite(r["value"][0] - r["control"][0]),
                 **{k: with_ci(*v) for k, v in diffs.items()}}
            e.update(decodable_verdict(e))
            out[n][latent] = e
    return out


def decodable_verdict(e: dict) -> dict:
    """Decodable: significantly above its baseline and above the random-init model; selective
    (stated beside it): significantly above its control task, i.e. more than the step type tells."""
    parts = ("excess", "vs_random")
    sel = e["selectivity"]["ci95"]
    selective = None if sel is None else bool(sel[0] > 0)
    if any(e[k]["ci95"] is None or e[k]["value"] is None for k in parts):
        return {"verdict": "not testable", "reason": "the metric is undefined (one class only)",
                "selective": selective}
    failed = [k for k in parts if e[k]["ci95"][0] <= 0]
    if not failed:
        return {"verdict": "holds", "reason": "above its baseline and the random-init model",
                "selective": selective}
    words = {"excess": "its baseline", "vs_random": "the random-init model"}
    return {"verdict": "does not hold", "selective": selective,
            "reason": "not significantly above " + " nor ".join(words[k] for k in failed)}


def decodable_from(lab, preds: list[dict], bases: dict, steps: list[int], layers: list[str], W,
                   fraction: float) -> dict:
    """Per layer and latent: the excess over the baseline at each probed checkpoint, and the step
    at which it reaches ``fraction`` of its final value (bootstrap interval, paired across
    checkpoints)."""
    out = {}
    for n in layers:
        out[n] = {}
        for latent in LATENTS:
            cs = [latent_curves(lab, p, bases, n, latent, W) for p in preds]
            curve = np.array([c["value"][0] - c["baseline"][0] for c in cs])
            boot = np.stack([c["value"][1] - c["baseline"][1] for c in cs], 1)  # (reps, checkpoints)
            final_ci = percentile_ci(boot[:, -1])
            e = {"curve": [finite(v) for v in curve], "final": finite(curve[-1]), "final_ci95": final_ci,
                 "t90_step": None, "ci95": None, "censored": None, "status": "not decodable"}
            if final_ci is not None and np.isfinite(curve).all() and final_ci[0] > 0:
                t, cens = reach_step(curve[None], steps, fraction)
                ok = np.isfinite(boot).all(1) & (boot[:, -1] > 0)
                tb = reach_step(np.nan_to_num(boot), steps, fraction)[0]
                ci = percentile_ci(np.where(ok, tb, np.nan))
                e.update(t90_step=int(round(float(t[0]))), censored=bool(cens[0]), status="measured",
                         ci95=[int(round(ci[0])), int(round(ci[1]))] if ci else None)
            out[n][latent] = e
    return out


def compare_cross_task(study: Study, cross: dict, layers: list[str], tasks: list[str], margin: float) -> dict:
    """The cross-task matrices of the trained and random-init models per layer, the paired
    difference of their mean off-diagonal AUROCs, and the shared-direction verdict."""
    boots = {who: load_npz(study, u["boot"]) for who, u in cross.items()}
    out = {"tasks": tasks, "margin": margin, "by_layer": {}}
    for n in layers:
        t, r = cross["trained"]["by_layer"][n], cross[RANDOM]["by_layer"][n]
        diff = None
        if t["mean_off_diagonal"] is not None and r["mean_off_diagonal"] is not None:
            diff = with_ci(t["mean_off_diagonal"] - r["mean_off_diagonal"], boots["trained"][n] - boots[RANDOM][n])
        entry = {"trained": t, "random": r, "trained_minus_random": diff}
        entry.update(shared_verdict(t, margin))
        out["by_layer"][n] = entry
    return out


def shared_verdict(t: dict, margin: float) -> dict:
    if t["pairs"] == 0 or t["ci95"] is None:
        return {"verdict": "not testable",
                "reason": f"no task pair with a probe and a test set ({len(t['trained_on'])} tasks "
                          f"trained, {len(t['tested_on'])} tested)"}
    lo = t["ci95"][0]
    if lo > 0.5 + margin:
        return {"verdict": "holds", "reason": f"mean off-diagonal AUROC's lower bound above {0.5 + margin:.2f}"}
    return {"verdict": "does not hold",
            "reason": f"mean off-diagonal AUROC's lower bound not above {0.5 + margin:.2f}"}


def verdict_summary(results: dict, layer: str) -> dict:
    return {"layer": layer,
            "decodable": {k: results["final"][layer][k]["verdict"] for k in LATENTS},
            "selective": {k: results["final"][layer][k]["selective"] for k in LATENTS},
            "decodable_from_step": {k: results["decodable_from"][layer][k]["t90_step"] for k in LATENTS},
            "shared_mistake_direction": results["cross_task"]["by_layer"][layer]["verdict"]}


# -- report ----------------------------------------------------------------------------------------------
def ci_num(ci) -> str:
    return "-" if not ci else f"[{num(ci[0])}, {num(ci[1])}]"


def vci(e: dict | None) -> str:
    return "-" if not e or e["value"] is None else f"{num(e['value'])} {ci_num(e['ci95'])}"


def yes_no(v) -> str:
    return "-" if v is None else ("yes" if v else "no")


def mean_ci(x: dict) -> str:
    return vci({"value": x["mean_off_diagonal"], "ci95": x["ci95"]})


def model_label(key: str) -> str:
    return "random init" if key == RANDOM else key.split("-")[1].lstrip("0") or "0"


def report(results: dict, out: Path) -> list[str]:
    prov, s = results["provenance"], results["provenance"]["settings"]
    layers, steps, tasks = results["layers"], results["steps"], results["tasks"]
    vl = s["verdict_layer"]
    keys = [model_key(x) for x in steps] + [RANDOM]
    L = ["# Study: what the hidden states encode (finding 4)", "",
         f"Scale `{results['scale']}`. {code_text(prov)}, scikit-learn {prov['sklearn_version']}. "
         f"It reads the emergence study in `{prov['emergence_dir']}` (scale {prov['emergence_scale']}): "
         f"dataset `{prov['dataset']}` (card sha256 `{prov['dataset_card_sha256'][:16]}...`), run "
         f"`{prov['run_dir']}` ({prov['model_params']} parameters, {prov['train_steps']} steps), probed "
         f"at steps {', '.join(map(str, steps))} of its checkpoints and at a random initialisation "
         f"(seed {prov['seeds']['random_init_seed']}) of the same architecture.",
         f"States of {results['samples']['steps']} demonstrated steps of {results['samples']['episodes']} "
         f"val episodes (the window ending at each; table below), read by "
         f"forward hooks at layers {', '.join(layers)}. Linear probes on standardised states, "
         f"{s['folds']}-fold split by episode (GroupKFold); logistic regression C={s['probe_c']}, "
         f"ridge alpha={s['ridge_alpha']}. Intervals: 95% bootstrap over val episodes "
         f"({prov['bootstrap_reps']} resamples within each task, paired across models; the probes are "
         f"not refit). Every figure below is in `results.json`.", "",
         "## Verdicts", "",
         f"At layer `{vl}` (declared before the numbers), the last checkpoint:", ""]
    for latent in LATENTS:
        e = results["final"][vl][latent]
        L.append(f"- {latent} linearly decodable ({METRIC[latent]}): **{e['verdict']}** "
                 f"({e['reason']}; {METRIC[latent]} {vci(e['trained'])}, baseline "
                 f"{num(e['baseline']['value'])}, minus random init {vci(e['vs_random'])}); selective "
                 f"(above its control task): **{yes_no(e['selective'])}** (selectivity "
                 f"{vci(e['selectivity'])}).")
    for latent in LATENTS:
        d = results["decodable_from"][vl][latent]
        frac = int(round(100 * s["reach_fraction"]))
        L.append(f"- {latent}: not decodable at the last checkpoint (the excess over its baseline is "
                 f"not significantly above 0)." if d["status"] != "measured" else
                 f"- {latent}: {frac}% of its final excess over the baseline by step "
                 f"{'<=' if d['censored'] else ''}{d['t90_step']} {ci_int(d['ci95'])}.")
    x = results["cross_task"]["by_layer"][vl]
    t = x["trained"]
    L += [f"- Shared mistake direction: **{x['verdict']}** ({x['reason']}; mean off-diagonal AUROC "
          f"{mean_ci(t)} over {t['pairs']} task pairs; random init {mean_ci(x['random'])}).", ""]
    # samples
    L += ["## Probed steps", "",
          f"Per task: val episodes, probed steps ({s['steps_per_episode']} at random per episode, and "
          f"up to {s['mistake_steps_per_episode']} more of its steps with a mistake present: they are "
          f"rare), steps with a mistake present, distinct phases and step types (click categories; a "
          f"control task's label is fixed per (task, type)).", ""]
    L += table(["task", "episodes", "steps", "of them added mistake steps", "mistake present", "phases",
                "step types"],
               [[tk, e["episodes"], e["steps"], e["extra_mistake_steps"], e["mistake_steps"], e["phases"],
                 e["step_types"]] for tk, e in results["samples"]["by_task"].items()])
    # final by layer
    L += ["", "## The last checkpoint, layer by layer", "",
          "Per latent and layer: the probe's metric on the trained model (phase accuracy, position "
          "R^2, mistake AUROC), its baseline (majority phase; the train folds' mean position; 0.5), "
          "the control task's metric, selectivity (metric minus control), the random-init model's "
          "metric, and the trained minus random-init difference; 95% intervals. Decodable: the "
          "metric minus its baseline and the trained minus random-init difference both have their "
          "lower bound above 0; selective: selectivity's lower bound is above 0.", ""]
    rows = []
    for latent in LATENTS:
        for n in layers:
            e = results["final"][n][latent]
            rows.append([latent, n, vci(e["trained"]), num(e["baseline"]["value"]), num(e["control"]["value"]),
                         vci(e["selectivity"]), vci(e["random"]), vci(e["vs_random"]), e["verdict"],
                         yes_no(e["selective"])])
    L += table(["latent", "layer", "metric", "baseline", "control task", "selectivity", "random init",
                "trained - random", "decodable", "selective"], rows)
    L += ["", "![probes by layer](probes_by_layer.png)", ""]
    # over checkpoints
    L += ["## Over training", "",
          "The probe's metric at each probed checkpoint (and at the random initialisation), per layer; "
          f"the last column: selectivity at `{vl}`.", ""]
    for latent in LATENTS:
        L += [f"**{latent}** ({METRIC[latent]}; baseline {BASELINE[latent]})", ""]
        rows = []
        for k in keys:
            f = results["by_model"][k]
            rows.append([model_label(k), *[num(f[n][latent]["value"]) for n in layers],
                         num(f[vl][latent]["selectivity"])])
        L += table(["step", *layers, f"selectivity ({vl})"], rows) + [""]
    frac = int(round(100 * s["reach_fraction"]))
    L += [f"**When each latent becomes decodable**: the step at which the metric's excess over its "
          f"baseline reaches {frac}% of its final value, interpolated in log(step) between the probed "
          f"checkpoints, with a 95% bootstrap interval; `<=`: already there at the first; "
          f"`not decodable`: the final excess's lower bound is not above 0.", ""]
    rows = []
    for n in layers:
        cells = []
        for latent in LATENTS:
            d = results["decodable_from"][n][latent]
            cells.append("not decodable" if d["status"] != "measured" else
                         f"{'<=' if d['censored'] else ''}{d['t90_step']} {ci_int(d['ci95'])} "
                         f"(final {num(d['final'])})")
        rows.append([n, *cells])
    L += table(["layer", *LATENTS], rows)
    L += ["", "![probes over training](probes_by_step.png)", ""]
    # cross-task
    L += ["## The cross-task mistake probe", "",
          f"A mistake probe trained on one task's first half of val episodes (row), tested on every "
          f"task's second half (column): AUROC at the last checkpoint, layer `{vl}` (the diagonal is "
          f"within task; `-`: fewer than {s['min_class']} steps of a class on one side). The shared "
          f"direction holds when the mean off-diagonal AUROC's 95% lower bound is above "
          f"0.5 + {s['shared_margin']} (margin).", ""]
    L += table(["trained on \\ tested on", *tasks],
               [[tasks[a], *[num(t["auroc"][a][b]) for b in range(len(tasks))]] for a in range(len(tasks))])
    d = results["state_dims"][vl]
    L += ["", f"Cosine similarity of the per-task probe directions (layer `{vl}`, trained model; "
              f"two random directions in its {d} dimensions have cosines of about 0 +- "
              f"1/sqrt({d}) = {1 / np.sqrt(d):.2f}).", ""]
    L += table(["direction", *tasks],
               [[tasks[a], *[num(t["cosine"][a][b]) for b in range(len(tasks))]] for a in range(len(tasks))])
    L += ["", "Per layer: the mean off-diagonal AUROC of the trained and the random-init model, their "
              "difference (paired), the task pairs above 0.5 + margin, the mean diagonal AUROC and the "
              "mean off-diagonal cosine.", ""]
    rows = []
    for n in layers:
        x = results["cross_task"]["by_layer"][n]
        tr, rd = x["trained"], x["random"]
        rows.append([n, mean_ci(tr), mean_ci(rd), vci(x["trained_minus_random"]),
                     f"{tr['pairs_above_margin']} of {tr['pairs']}", num(tr["mean_diagonal"]),
                     num(tr["mean_off_diagonal_cosine"]), num(rd["mean_off_diagonal_cosine"]), x["verdict"]])
    L += table(["layer", "off-diagonal AUROC", "random init", "trained - random", "pairs above margin",
                "diagonal AUROC", "cosine", "random-init cosine", "shared"], rows)
    L += ["", "![cross-task mistake probe](cross_task_mistake.png)"]
    plot_by_layer(results, out / "probes_by_layer.png")
    plot_by_step(results, out / "probes_by_step.png")
    plot_cross_task(results, out / "cross_task_mistake.png")
    return L


def plot_by_layer(results: dict, path: Path) -> None:
    plt = pyplot()
    layers = results["layers"]
    x = np.arange(len(layers))
    fig, axes = plt.subplots(1, len(LATENTS), figsize=(3.2 * len(LATENTS), 2.6))
    for ax, latent in zip(axes, LATENTS):
        f = [results["final"][n][latent] for n in layers]

        def series(k):
            return np.array([e[k]["value"] if e[k]["value"] is not None else np.nan for e in f])

        for k, style, label in (("trained", "o-", "trained (last ckpt)"), ("random", "s--", "random init"),
                                ("control", "^:", "control task"), ("baseline", "-", "baseline")):
            ax.plot(x, series(k), style, ms=3, lw=1, label=label,
                    color={"baseline": "0.6"}.get(k))
        ax.set_xticks(x, layers, fontsize=6, rotation=45)
        ax.set_title(f"{latent} ({METRIC[latent]})", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0].legend(fontsize=5)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_by_step(results: dict, path: Path) -> None:
    plt = pyplot()
    from matplotlib.ticker import NullFormatter

    steps, layers = results["steps"], results["layers"]
    fig, axes = plt.subplots(1, len(LATENTS), figsize=(3.2 * len(LATENTS), 2.6))
    for ax, latent in zip(axes, LATENTS):
        for n in layers:
            vals = [results["by_model"][model_key(s)][n][latent]["value"] for s in steps]
            ax.plot(steps, [np.nan if v is None else v for v in vals], marker="o", ms=2, lw=1, label=n)
        vl = results["verdicts"]["layer"]
        rnd = results["by_model"][RANDOM][vl][latent]["value"]
        if rnd is not None:
            ax.axhline(rnd, ls="--", lw=0.8, color="0.4", label=f"random init ({vl})")
        base = results["final"][vl][latent]["baseline"]["value"]
        if base is not None:
            ax.axhline(base, ls=":", lw=0.8, color="0.6", label="baseline")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{latent} ({METRIC[latent]})", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0].legend(fontsize=5)
    fig.supxlabel("training step (log)", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_cross_task(results: dict, path: Path) -> None:
    plt = pyplot()
    tasks = results["tasks"]
    vl = results["verdicts"]["layer"]
    x = results["cross_task"]["by_layer"][vl]
    panels = ((x["trained"]["auroc"], "AUROC, trained (last ckpt)", 0, 1, "RdBu_r"),
              (x["random"]["auroc"], "AUROC, random init", 0, 1, "RdBu_r"),
              (x["trained"]["cosine"], "direction cosine, trained", -1, 1, "PuOr_r"))
    n = len(tasks)
    fig, axes = plt.subplots(1, 3, figsize=(3 * max(3.0, 0.45 * n + 1.5), max(3.0, 0.4 * n + 1.5)))
    short = [t.replace("_", " ")[:14] for t in tasks]
    for ax, (m, title, lo, hi, cmap) in zip(axes, panels):
        a = np.array([[np.nan if v is None else v for v in row] for row in m], float)
        im = ax.imshow(a, vmin=lo, vmax=hi, cmap=cmap)
        for i in range(n):
            for j in range(n):
                if np.isfinite(a[i, j]):
                    ax.text(j, i, f"{a[i, j]:.2f}", ha="center", va="center", fontsize=5)
        ax.set_xticks(range(n), short, fontsize=5, rotation=90)
        ax.set_yticks(range(n), short, fontsize=5)
        ax.set_title(f"{title} ({vl})", fontsize=7)
        ax.set_xlabel("tested on", fontsize=6)
        ax.set_ylabel("trained on", fontsize=6)
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).ax.tick_params(labelsize=5)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
