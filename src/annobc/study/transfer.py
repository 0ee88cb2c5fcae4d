"""``annobc study transfer``: finding 3 of the study. A model pretrained on several tasks fine-tunes
to a new task efficiently; the same model trained from scratch on that task's few episodes fails.

Leave tasks out. Each held-out task is never seen in pretraining: with ``pretraining: leave_one_out``
(the paper's design) it has a pretraining run of its own on every other task of the pool; with
``pretraining: shared`` one run on the pool minus all the held-out tasks serves them all (the micro
budget affords one pretraining run, not three). A pretraining run is one unit, trained once and
reused by every fine-tuning run that starts from it; a held-out task may come from a plugin package
(entry-point group ``annobc.tasks``) that the pool does not hold.

Per held-out task, train episodes N on a log-spaced grid (nested: a smaller N's episodes are the
first of a larger one's), and at each N the arms, every one trained for the same ``finetune_steps``:

- each fine-tuning recipe of ``finetune`` (weights from the pretraining run; ``published``: LR 3e-5
  for the head and the temporal model, the backbone at 0.01x that; ``full``: every part at the
  pretraining run's own optimizer settings);
- ``scratch``: the same model from random weights at the pretraining run's optimizer settings (so
  ``full`` and ``scratch`` differ only in their starting weights).

Every arm, and the pretrained model without fine-tuning (N = 0, zero-shot), is scored on the held-out
task: teacher-forced on its val set (the same windows for every arm; per-category accuracy with
paired bootstrap intervals over windows) and closed loop on its test seeds (success with Wilson
intervals). Then, per recipe and N:

- fine-tuned against scratch: the difference in teacher-forced accuracy (paired bootstrap interval)
  and in closed-loop success (significant: disjoint Wilson intervals);
- the data-efficiency gain: the episodes scratch needs to reach what the fine-tuned model reaches
  with N (linear in the metric between grid points, at log N), over N; ``not reached`` where scratch
  never gets there on the grid (the gain is then at least the largest N over N).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from annobc.study.common import (Study, StudyError, atomic_save_npz, bootstrap_weights, ci_pct,
                                 code_text, cpu_estimate, dataset_unit, num, pct,
                                 percentile_ci, proportion, provenance, pyplot, recipe_overrides,
                                 screen_and_variant, table, tasks_of, test_seeds, train_overrides,
                                 train_unit, trained_optim, write_outputs)
from annobc.study.emergence import skill_mask
from annobc.study.scaling import CATEGORY_COLUMNS, train_plan, val_plan
from annobc.tasks.base import BUTTON_CATEGORIES

SCRATCH = "scratch"
ZERO_SHOT = "zero-shot"
PRETRAINING_MODES = ("shared", "leave_one_out")
# Teacher-forced metric -> (the categories of the windows it is scored on (None: all), the flag).
TF_METRICS: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "accuracy": (None, "hit"), "validity": (None, "valid_action"),
    "buttons": (BUTTON_CATEGORIES, "same_element"),
    **{c: ((c,), "hit") for c in CATEGORY_COLUMNS},
}


# -- the plan ---------------------------------------------------------------------------------------
def held_out_tasks(c: dict) -> list[str]:
    """The held-out tasks: a list, a comma-separated string, or "all" (every task of the pool)."""
    spec = c["held_out"]
    if spec in ("all", ["all"]):
        return list(tasks_of(c["tasks"]))
    names = list(tasks_of(spec))
    if len(set(names)) != len(names):
        raise StudyError(f"held_out names a task twice: {names}")
    return names


def pretraining_sets(c: dict, held_out: list[str]) -> dict[str, tuple[str, ...]]:
    """Held-out task -> the tasks its pretraining run trains on (none of them held out for it)."""
    pool = tasks_of(c["tasks"])
    if c["pretraining"] not in PRETRAINING_MODES:
        raise StudyError(f"pretraining must be one of {', '.join(PRETRAINING_MODES)}, "
                         f"got {c['pretraining']!r}")
    out = {}
    for t in held_out:
        excluded = set(held_out) if c["pretraining"] == "shared" else {t}
        out[t] = tuple(p for p in pool if p not in excluded)
        if not out[t]:
            raise StudyError(f"no task left to pretrain on for held-out task {t} (pool: "
                             f"{', '.join(pool)})")
    return out


def pretrain_run_names(sets: dict[str, tuple[str, ...]], pool) -> dict[tuple[str, ...], str]:
    """One run per distinct pretraining task set (held-out tasks sharing a set share the run),
    named by what it leaves out of the pool."""
    distinct = list(dict.fromkeys(sets.values()))
    if len(distinct) == 1:
        return {distinct[0]: "pretrain"}
    names = {}
    for s in distinct:
        missing = [p for p in pool if p not in s]
        names[s] = "pretrain-without-" + "+".join(missing) if missing else "pretrain-all"
    return names


def arms(c: dict) -> list[str]:
    names = [r["name"] for r in c["finetune"]] + [SCRATCH]
    if len(set(names)) != len(names) or ZERO_SHOT in names:
        raise StudyError(f"fine-tuning recipe names must differ from each other and from "
                         f"{SCRATCH!r} and {ZERO_SHOT!r}, got {names[:-1]}")
    if not c["finetune"]:
        raise StudyError("the study needs at least one fine-tuning recipe (finetune)")
    return names


def run_name(task: str, arm: str, n: int) -> str:
    return f"{task}-{arm}-n{n}"


def task_data(study: Study, task: str) -> Path:
    return study.out / "data" / task


def plan_runs(study: Study) -> dict:
    """The study's units without running them: datasets, the pretraining and grid runs, evaluations."""
    c = study.cfg
    held_out = held_out_tasks(c)
    episodes = sorted({int(n) for n in c["episodes"]})
    if len(episodes) < 2 or episodes[0] < 1:
        raise StudyError(f"the episode grid needs at least 2 sizes >= 1, got {c['episodes']}")
    names = arms(c)
    pool = tasks_of(c["tasks"])
    sets = pretraining_sets(c, held_out)
    pre_names = pretrain_run_names(sets, pool)
    datasets, train = [], []
    for s, name in pre_names.items():
        data = study.out / "data" / name
        datasets.append({"unit": f"data-{name}", "path": str(data), "tasks": list(s),
                         "episodes_per_task": c["pretrain_episodes_per_task"]})
        train.append({"unit": f"train-{name}", "run": name, "role": "pretraining", "tasks": list(s),
                      "base_config": c["base_config"], "launcher": c["launcher"],
                      "overrides": train_overrides(study, name, data, c["model_preset"],
                                                   c["model_overrides"], c["pretrain_steps"])})
    recipes = {r["name"]: r for r in c["finetune"]}
    evaluations = []
    for t in held_out:
        init = study.out / "runs" / pre_names[sets[t]]
        for n in episodes:
            datasets.append({"unit": f"data-{t}-train-n{n}", "path": str(task_data(study, t) / f"train-n{n}"),
                             "tasks": [t], "train_episodes_per_task": n})
        datasets.append({"unit": f"data-{t}-val", "path": str(task_data(study, t) / "val"), "tasks": [t],
                         "val_episodes_per_task": c["val_episodes_per_task"]})
        evaluations += [f"tf-{t}-{ZERO_SHOT}", f"cl-{t}-{ZERO_SHOT}"]
        for n in episodes:
            for arm in names:
                run = run_name(t, arm, n)
                extra = recipe_overrides(recipes.get(arm), init if arm != SCRATCH else None)
                train.append({"unit": f"train-{run}", "run": run, "role": arm, "task": t, "episodes": n,
                              "pretrained_from": pre_names[sets[t]] if arm != SCRATCH else None,
                              "base_config": c["base_config"], "launcher": c["launcher"],
                              "overrides": train_overrides(
                                  study, run, task_data(study, t) / f"train-n{n}", c["model_preset"],
                                  c["model_overrides"], c["finetune_steps"]) + extra})
                evaluations += [f"tf-{run}", f"cl-{run}"]
    scored = len(held_out) * (1 + len(episodes) * len(names))  # models scored: zero-shot + grid
    load = {"tf_windows": scored * c["tf_windows"],
            "closed_loop_frames": scored * c["closed_loop_episodes"] * c["closed_loop_max_steps"]}
    steps = {"pretraining": len(pre_names) * c["pretrain_steps"],
             "fine-tuning and scratch": len(held_out) * len(episodes) * len(names) * c["finetune_steps"]}
    return {"held_out": held_out, "pool": list(pool), "episodes": episodes, "arms": names,
            "pretraining": {t: {"run": pre_names[sets[t]], "tasks": list(sets[t])} for t in held_out},
            "datasets": datasets, "train": train, "evaluation_load": load, "evaluations": evaluations,
            "training_steps": steps, "cpu_estimate": cpu_estimate(steps, load, scored)}


# -- the run ------------------------------------------------------------------------------------------
def pretrain_plan(tasks, c: dict):
    from annobc.data import Plan, parse_task_params

    return Plan(tasks=tuple(tasks), episodes_per_task=c["pretrain_episodes_per_task"], seed=c["seed"],
                screen=tuple(c["screen"]), params=parse_task_params(c["params"]))


def run(study: Study) -> dict:
    from annobc.data import EpisodeStore

    c = study.cfg
    plan = plan_runs(study)
    held_out, episodes, names = plan["held_out"], plan["episodes"], plan["arms"]
    by_unit = {d["unit"]: d for d in plan["datasets"]}
    runs = {r["run"]: r for r in plan["train"]}
    # -- pretraining: one unit per distinct task set, reused by every run that starts from it ------
    pre = {}
    for r in (r for r in plan["train"] if r["role"] == "pretraining"):
        d = by_unit[f"data-{r['run']}"]
        data_unit = dataset_unit(study, d["unit"], Path(d["path"]), pretrain_plan(d["tasks"], c))
        pre[r["run"]] = {"data": data_unit, "train": train_unit(study, r["run"], r["overrides"]),
                         "tasks": r["tasks"]}
    # -- per held-out task: datasets, then each arm at each N trained and scored ----------------------
    bar = study.bar(len(held_out) * (1 + len(episodes) * len(names)), "models scored", "model")
    scored, data = {}, {}
    for t in held_out:
        data[t] = {n: dataset_unit(study, f"data-{t}-train-n{n}", task_data(study, t) / f"train-n{n}",
                                   train_plan([t], n, c)) for n in episodes}
        data[t]["val"] = dataset_unit(study, f"data-{t}-val", task_data(study, t) / "val",
                                      val_plan([t], c))
        val = EpisodeStore(data[t]["val"]["path"])
        pre_run = pre[plan["pretraining"][t]["run"]]["train"]
        scored[t] = {ZERO_SHOT: {0: score(study, val, t, f"{t}-{ZERO_SHOT}", pre_run)}}
        bar.update(1)
        for n in episodes:
            for arm in names:
                r = runs[run_name(t, arm, n)]
                tr = train_unit(study, r["run"], r["overrides"])
                scored[t].setdefault(arm, {})[n] = score(study, val, t, r["run"], tr)
                bar.update(1)
    bar.close()
    # -- analysis -------------------------------------------------------------------------------------
    # every arm's optimizer as trained (the recipes' values resolved)
    optim = {arm: trained_optim(c, runs[run_name(held_out[0], arm, episodes[0])]["overrides"],
                                pretrained=arm != SCRATCH) for arm in names}
    by_task = {t: analyse_task(study, t, scored[t], episodes, names) for t in held_out}
    results = {
        "study": "transfer", "scale": study.scale,
        "provenance": provenance(
            study, pool=plan["pool"], pretraining_mode=c["pretraining"],
            pretraining_runs={name: {"tasks": p["tasks"], "run_dir": p["train"]["run_dir"],
                                     "steps": p["train"]["step"], "params": p["train"]["params"],
                                     "dataset": p["data"]["path"],
                                     "card_sha256": p["data"]["card_sha256"]} for name, p in pre.items()},
            datasets={t: {**{str(n): {"path": data[t][n]["path"], "card_sha256": data[t][n]["card_sha256"]}
                             for n in episodes},
                          "val": {"path": data[t]["val"]["path"],
                                  "card_sha256": data[t]["val"]["card_sha256"]}} for t in held_out},
            seeds={"data_base_seed": c["seed"], "train_seed": c["seed"], "bootstrap_seed": c["seed"],
                   "closed_loop_test_seeds": {t: by_task[t]["closed_loop_seeds"] for t in held_out}},
            finetune_steps=c["finetune_steps"], val_windows=c["tf_windows"],
            bootstrap_reps=c["bootstrap"]),
        "held_out": held_out, "episodes": episodes, "arms": names,
        "recipes": [r["name"] for r in c["finetune"]], "optim": optim,
        "pretraining": plan["pretraining"], "by_task": by_task,
    }
    results["verdicts"] = verdicts(results)
    lines = report(results, study.out)
    write_outputs(study.out, results, lines)
    return results


# -- units ----------------------------------------------------------------------------------------------
def score(study: Study, val, task: str, name: str, tr: dict, closed_loop=None) -> dict:
    """A trained model's teacher-forced and closed-loop units on the held-out task;
    ``closed_loop(study, val, task, name, tr)`` replaces the closed-loop unit (default: cl_unit)."""
    cl = closed_loop or (lambda st, v, t, n, r: cl_unit(st, v, [t], n, r))
    return {"train": tr,
            "tf": study.unit(f"tf-{name}", lambda: tf_unit(study, val, [task], name, tr)),
            "cl": study.unit(f"cl-{name}", lambda: cl(study, val, task, name, tr))}


def tf_unit(study: Study, val, tasks: list[str], name: str, tr: dict) -> dict:
    """A trained model teacher-forced on ``val``'s val windows of ``tasks``; the per-window flags
    (with each window's task and GUI variant) in units/tf-NAME.npz, for the bootstrap."""
    from annobc.learning.checkpoint import load_policy
    from annobc.learning.loss import LossConfig
    from annobc.learning.teacher_forced import teacher_forced

    c = study.cfg
    model, state = load_policy(tr["run_dir"], c["device"])
    if tuple(val.card["screen"]) != (model.cfg.screen_w, model.cfg.screen_h):
        raise StudyError(f"the val set's screen {val.card['screen']} is not the model's")
    m = teacher_forced(model, val, "val", max_windows=c["tf_windows"], batch_size=c["tf_batch"],
                       device=c["device"], tasks=list(tasks), return_rows=True,
                       loss=LossConfig(**state["train_config"]["loss"]))
    rows = m.pop("rows")
    path = f"tf-{name}.npz"
    atomic_save_npz(study.out / "units" / path, task=rows["task"], variant=rows["variant"],
                    category=rows["category"].astype(np.int8),
                    hit=rows["hit"], valid_action=rows["valid_action"],
                    same_element=rows["same_element"], dist=rows["dist"].astype(np.float32))
    return {"run": tr["run"], "step": int(state["step"]), "rows": path, "nll": m.get("nll"),
            "teacher_forced": {k: v for k, v in m.items() if k != "by_task"}}


def cl_unit(study: Study, val, tasks: list[str], name: str, tr: dict,
            variants: list[str] | None = None) -> dict:
    """A trained model closed loop on ``val``'s test seeds of each of ``tasks``, shown in the val
    set's GUI variant or, with ``variants``, seed i in variants[i]: the figures pooled over the
    episodes, and each episode's task, seed, variant and outcome (in task, then seed order)."""
    from annobc.eval.closed_loop import closed_loop, closed_loop_metrics
    from annobc.learning.checkpoint import load_policy

    c = study.cfg
    model, state = load_policy(tr["run_dir"], c["device"])
    screen, theme, variant = screen_and_variant(val)
    seeds = test_seeds(val, c["closed_loop_episodes"])
    params = {t: v["params"] for t, v in val.card.get("tasks", {}).items()}
    bar = study.bar(len(seeds) * len(tasks), f"closed loop {name}", "ep")
    rollouts = closed_loop(model, list(tasks), seeds, c["temperature"], c["closed_loop_max_steps"],
                           screen, theme, c["device"], name=name, batch_size=c["closed_loop_batch"],
                           progress=bar, params=params, ui_variant=variants or variant)
    bar.close()
    recs = [r.record for t in tasks for r in rollouts[t]]
    # per task, then the mean over tasks (the same episodes each: the mean over episodes)
    m = [closed_loop_metrics([r.record for r in rollouts[t]]) for t in tasks]
    return {"run": tr["run"], "step": int(state["step"]), "seeds": seeds,
            "temperature": c["temperature"], "max_steps": c["closed_loop_max_steps"],
            "success": proportion(sum(r.success for r in recs), len(recs)),
            **{k: float(np.mean([x[k] for x in m])) for k in ("done_rate", "mean_length",
                                                               "action_validity", "score")},
            "episodes": {"task": [r.task_id for r in recs], "seed": [r.seed for r in recs],
                         "variant": [r.ui_variant for r in recs],
                         "success": [bool(r.success) for r in recs], "done": [bool(r.done) for r in recs],
                         "length": [len(r.steps) for r in recs]}}


# -- analysis -------------------------------------------------------------------------------------------
def load_rows(study: Study, unit: dict) -> dict:
    with np.load(study.out / "units" / unit["rows"]) as z:
        r = {k: z[k] for k in z.files}
    r["category"] = r["category"].astype(int)
    return r


def metric_samples(rows: dict, W: np.ndarray, cats, flag: str) -> tuple[float | None, int, np.ndarray]:
    """A teacher-forced metric on its windows: value, window count, and its value in each bootstrap
    resample (rows of W: resampling counts per window; NaN where a resample holds none of them)."""
    mask = skill_mask(rows["category"], cats).astype(float)
    n = int(mask.sum())
    if not n:
        return None, 0, np.full(len(W), np.nan)
    f = rows[flag].astype(float) * mask
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = (W @ f) / (W @ mask)
    return float(f.sum() / n), n, boot


def analyse_task(study: Study, task: str, scored: dict, episodes: list[int], names: list[str]) -> dict:
    """One held-out task: every scored model's figures, fine-tuned against scratch, data efficiency."""
    c = study.cfg
    cells = [(ZERO_SHOT, 0)] + [(a, n) for n in episodes for a in names]
    rows = {k: load_rows(study, scored[k[0]][k[1]]["tf"]) for k in cells}
    first = rows[cells[0]]
    for k, r in rows.items():
        if not np.array_equal(r["category"], first["category"]):
            raise StudyError(f"{task}: the teacher-forced windows of {k[0]} at N={k[1]} differ from "
                             f"those of the zero-shot model")
    # One set of resamples of the val windows for every model: the differences are paired.
    W = bootstrap_weights(len(first["category"]), int(c["bootstrap"]), np.random.default_rng(c["seed"]))
    figures, boot = {}, {}
    for arm, n in cells:
        s = scored[arm][n]
        tf, samples = {}, {}
        for name, (cats, flag) in TF_METRICS.items():
            v, k, b = metric_samples(rows[(arm, n)], W, cats, flag)
            tf[name] = {"value": v, "n": k, "ci95": percentile_ci(b) if v is not None else None}
            samples[name] = b
        figures.setdefault(arm, {})[str(n)] = {
            "episodes": n, "steps": s["train"]["step"], "run": s["train"]["run"],
            "nll": s["tf"]["nll"], "teacher_forced": tf,
            "closed_loop": {k: s["cl"][k] for k in ("success", "done_rate", "mean_length",
                                                     "action_validity", "score")}}
        boot[(arm, n)] = samples
    recipes = [a for a in names if a != SCRATCH]
    vs = {r: {str(n): compare(figures[r][str(n)], figures[SCRATCH][str(n)], boot[(r, n)]["accuracy"],
                              boot[(SCRATCH, n)]["accuracy"]) for n in episodes} for r in recipes}
    scratch_tf = [figures[SCRATCH][str(n)]["teacher_forced"]["accuracy"]["value"] for n in episodes]
    scratch_cl = [figures[SCRATCH][str(n)]["closed_loop"]["success"]["rate"] for n in episodes]
    eff = {r: {"accuracy": {str(n): gain(figures[r][str(n)]["teacher_forced"]["accuracy"]["value"],
                                         n, scratch_tf, episodes) for n in episodes},
               "success": {str(n): gain(figures[r][str(n)]["closed_loop"]["success"]["rate"],
                                        n, scratch_cl, episodes) for n in episodes}}
           for r in recipes}
    seeds = scored[ZERO_SHOT][0]["cl"]["seeds"]
    return {"pretraining_run": scored[ZERO_SHOT][0]["train"]["run"], "windows": len(first["category"]),
            "closed_loop_seeds": [seeds[0], seeds[-1]] if seeds else [],
            "zero_shot": figures[ZERO_SHOT]["0"], "arms": {a: figures[a] for a in names},
            "vs_scratch": vs, "efficiency": eff}


def compare(ft: dict, sc: dict, ft_boot: np.ndarray, sc_boot: np.ndarray) -> dict:
    """A fine-tuned model against scratch at the same N: teacher-forced accuracy (paired bootstrap
    interval of the difference) and closed-loop success (disjoint Wilson intervals)."""
    a, b = ft["teacher_forced"]["accuracy"]["value"], sc["teacher_forced"]["accuracy"]["value"]
    ci = percentile_ci(ft_boot - sc_boot)
    p, q = ft["closed_loop"]["success"], sc["closed_loop"]["success"]
    return {"accuracy_difference": a - b, "accuracy_difference_ci95": ci,
            "accuracy_significant": bool(ci is not None and (ci[0] > 0 or ci[1] < 0)),
            "accuracy_verdict": "holds" if a > b else "does not hold",
            "success_difference": p["rate"] - q["rate"],
            "success_significant": bool(p["ci95"][0] > q["ci95"][1] or p["ci95"][1] < q["ci95"][0]),
            "success_verdict": ("not testable" if p["k"] == 0 and q["k"] == 0 else
                                "holds" if p["rate"] > q["rate"] else "does not hold")}


def episodes_to_reach(values: list[float], episodes: list[int], target: float) -> dict:
    """The episodes at which a curve over the grid first reaches ``target``: linear in the value
    between the two grid points around the crossing, at log(episodes). Censored where the first
    grid point already reaches it (the true number may be smaller)."""
    for i, v in enumerate(values):
        if v >= target - 1e-12:
            if i == 0:
                return {"episodes": float(episodes[0]), "censored": True, "reached": True}
            a = values[i - 1]
            t = (target - a) / (v - a) if v > a else 1.0
            lo, hi = math.log(episodes[i - 1]), math.log(episodes[i])
            return {"episodes": math.exp(lo + min(max(t, 0.0), 1.0) * (hi - lo)), "censored": False,
                    "reached": True}
    return {"episodes": None, "censored": False, "reached": False}


def gain(target: float, n: int, scratch: list[float], episodes: list[int]) -> dict:
    """How many times N scratch needs to reach ``target`` (the fine-tuned model's figure at N)."""
    out = {"target": target, "episodes": n}
    if target <= 0:
        return {**out, "status": "not testable", "scratch_episodes": None, "gain": None,
                "gain_at_least": None, "why": "the fine-tuned model scores 0"}
    e = episodes_to_reach(scratch, episodes, target)
    if not e["reached"]:
        return {**out, "status": "not reached", "scratch_episodes": None, "gain": None,
                "gain_at_least": episodes[-1] / n, "scratch_best": max(scratch)}
    return {**out, "status": "censored" if e["censored"] else "reached",
            "scratch_episodes": e["episodes"], "gain": e["episodes"] / n, "gain_at_least": None}


def verdicts(results: dict) -> dict:
    """Per held-out task and recipe: better than scratch at how many N (and how many significantly),
    teacher-forced and closed loop; the gain at the smallest N."""
    out = {}
    n0 = str(results["episodes"][0])
    for t, d in results["by_task"].items():
        out[t] = {}
        for r, points in d["vs_scratch"].items():
            ps = list(points.values())
            acc = [p["accuracy_verdict"] for p in ps]
            suc = [p["success_verdict"] for p in ps]
            testable = [v for v in suc if v != "not testable"]
            out[t][r] = {
                "accuracy_holding": acc.count("holds"), "points": len(ps),
                "accuracy_significant": sum(p["accuracy_significant"] and p["accuracy_verdict"] == "holds"
                                            for p in ps),
                "accuracy_verdict": "holds" if acc.count("holds") == len(ps) else "does not hold",
                "success_holding": suc.count("holds"), "success_testable": len(testable),
                "success_significant": sum(p["success_significant"] and p["success_verdict"] == "holds"
                                           for p in ps),
                "success_verdict": ("not testable" if not testable else
                                    "holds" if testable.count("holds") == len(testable) else "does not hold"),
                "accuracy_gain_at_smallest": d["efficiency"][r]["accuracy"][n0],
                "success_gain_at_smallest": d["efficiency"][r]["success"][n0]}
    return out


# -- report ---------------------------------------------------------------------------------------------
def lr_text(o: dict) -> str:
    return f"LR {o['lr']:g}, backbone x{o['backbone_lr_mult']:g} ({o['backbone_lr']:g})"


def gain_cells(g: dict) -> list[str]:
    """The episodes scratch needs and the gain, as the report prints them."""
    if g["status"] == "not testable":
        return ["not testable", "-"]
    if g["status"] == "not reached":
        return ["not reached", f"> {num(g['gain_at_least'], 1)}"]
    prefix = "<=" if g["status"] == "censored" else ""
    return [prefix + num(g["scratch_episodes"], 1), prefix + num(g["gain"], 1)]


def gain_text(g: dict, what: str) -> str:
    if g["status"] == "not testable":
        return f"{what}: not testable ({g['why']})"
    if g["status"] == "not reached":
        return (f"{what}: scratch does **not reach** it on the grid (its best {num(g['scratch_best'])}; "
                f"gain above {num(g['gain_at_least'], 1)})")
    if g["status"] == "censored":
        return f"{what}: scratch reaches it already at the smallest N (gain at most {num(g['gain'], 1)})"
    return f"{what}: scratch needs {num(g['scratch_episodes'], 1)} episodes (gain {num(g['gain'], 1)})"


def cell(m: dict) -> str:
    return "-" if m["value"] is None else f"{pct(m['value'])} {ci_pct(m['ci95'])}"


def report(results: dict, out: Path) -> list[str]:
    prov = results["provenance"]
    s = prov["settings"]
    eps, names = results["episodes"], results["arms"]
    L = ["# Study: transfer (finding 3)", "",
         f"Scale `{results['scale']}`. {code_text(prov)}. Held out: "
         f"{', '.join(results['held_out'])}; pool: {', '.join(prov['pool'])}; pretraining "
         f"`{prov['pretraining_mode']}`:"]
    for name, p in prov["pretraining_runs"].items():
        L.append(f"- `{name}`: {p['steps']} steps on {', '.join(p['tasks'])} ({p['params']} parameters, "
                 f"{s['pretrain_episodes_per_task']} episodes per task, card sha256 "
                 f"`{p['card_sha256'][:16]}...`).")
    L += ["", f"Per held-out task, N train episodes ({', '.join(map(str, eps))}; nested) and these "
          f"arms, **every one trained for the same {prov['finetune_steps']} steps** (seed "
          f"{prov['seeds']['train_seed']}):"]
    for arm in names:
        o = results["optim"][arm]
        init = "random weights" if o["init"] == "random" else "the pretraining run's weights"
        L.append(f"- `{arm}`: {init}, {lr_text(o)}, warm-up {o['warmup_steps']} steps + cosine, "
                 f"batch {o['batch']}.")
    L += ["", f"`{ZERO_SHOT}` (N = 0) is the pretraining run itself on the held-out task. Teacher-forced "
          f"on the held-out task's val set ({prov['val_windows']} windows, the same for every model; 95% "
          f"intervals from {prov['bootstrap_reps']} paired bootstrap resamples of the windows, which, "
          f"correlated within an episode, make them if anything too narrow); closed loop on "
          f"{s['closed_loop_episodes']} test seeds (temperature {s['temperature']}, at most "
          f"{s['closed_loop_max_steps']} clicks; success with its 95% Wilson interval). Every figure "
          f"below is in `results.json`.", "", "## Verdicts", ""]
    n0 = eps[0]
    for t, per in results["verdicts"].items():
        for r, v in per.items():
            L.append(f"- {t}, `{r}` against `{SCRATCH}`: teacher-forced accuracy higher at "
                     f"{v['accuracy_holding']} of {v['points']} N ({v['accuracy_significant']} "
                     f"significantly): **{v['accuracy_verdict']}**; closed-loop success higher at "
                     f"{v['success_holding']} of {v['success_testable']} testable N "
                     f"({v['success_significant']} significantly): **{v['success_verdict']}**. At N = "
                     f"{n0}, {gain_text(v['accuracy_gain_at_smallest'], 'teacher-forced accuracy')}; "
                     f"{gain_text(v['success_gain_at_smallest'], 'closed-loop success')}.")
    L += ["", "![teacher-forced accuracy against N](transfer_accuracy.png)", "",
          "![closed-loop success against N](transfer_success.png)", ""]
    for t, d in results["by_task"].items():
        L += report_task(t, d, eps, names)
    plot(results, out / "transfer_accuracy.png", "accuracy")
    plot(results, out / "transfer_success.png", "success")
    return L


def report_task(t: str, d: dict, eps: list[int], names: list[str]) -> list[str]:
    models = [(ZERO_SHOT, d["zero_shot"])] + [(a, d["arms"][a][str(n)]) for n in eps for a in names]
    L = [f"## {t}", "", f"Pretrained by `{d['pretraining_run']}`; {d['windows']} val windows.", ""]
    rows = []
    for arm, f in models:
        tf, cl = f["teacher_forced"], f["closed_loop"]
        su = cl["success"]
        rows.append([arm, f["episodes"], f["steps"], cell(tf["accuracy"]), cell(tf["validity"]),
                     cell(tf["buttons"]), num(f["nll"]), f"{pct(su['rate'])} {ci_pct(su['ci95'])}",
                     f"{su['k']}/{su['n']}", pct(cl["done_rate"]), num(cl["mean_length"], 1)])
    L += table(["arm", "N", "steps", "TF accuracy", "validity", "buttons", "val NLL", "closed-loop success",
                "successes", "done", "length"], rows)
    L += ["", "Teacher-forced accuracy by click category (place: within 5 px on the canvas; buttons: "
          "the same button), with 95% bootstrap intervals:", ""]
    L += table(["arm", "N", *CATEGORY_COLUMNS],
               [[arm, f["episodes"], *[cell(f["teacher_forced"][c]) for c in CATEGORY_COLUMNS]]
                for arm, f in models])
    L += ["", f"Fine-tuned minus `{SCRATCH}` at the same N (teacher-forced accuracy: paired bootstrap "
          "interval; closed-loop success: significant where the Wilson intervals are disjoint):", ""]
    rows = []
    for r, points in d["vs_scratch"].items():
        for n in eps:
            p = points[str(n)]
            rows.append([r, n, f"{pct(p['accuracy_difference'])} {ci_pct(p['accuracy_difference_ci95'])}",
                         "yes" if p["accuracy_significant"] else "no", f"**{p['accuracy_verdict']}**",
                         pct(p["success_difference"]), "yes" if p["success_significant"] else "no",
                         f"**{p['success_verdict']}**"])
    L += table(["recipe", "N", "TF accuracy difference", "significant", "verdict",
                "success difference", "significant", "verdict"], rows)
    L += ["", f"Data efficiency: the episodes `{SCRATCH}` needs to reach what the fine-tuned model reaches "
          "with N (interpolated linearly in the figure at log N between grid points), and that over N "
          "(the gain); `<=`: scratch already reaches it at the smallest N; not reached: nowhere on the "
          "grid (the gain is then above the largest N over N).", ""]
    rows = []
    for r, eff in d["efficiency"].items():
        for metric, label, fmt in (("accuracy", "TF accuracy", pct), ("success", "closed-loop success", pct)):
            for n in eps:
                g = eff[metric][str(n)]
                rows.append([r, label, n, fmt(g["target"]), *gain_cells(g)])
    L += table(["recipe", "figure", "N", "fine-tuned", "scratch needs (episodes)", "gain"], rows)
    return L + [""]


def plot(results: dict, path: Path, metric: str) -> None:
    """One panel per held-out task: the figure against N per arm, with its 95% interval; the
    zero-shot model as a dashed line."""
    plt = pyplot()
    from matplotlib.ticker import NullFormatter

    tasks, eps = results["held_out"], results["episodes"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.0 * len(tasks), 2.7), squeeze=False, sharey=True)

    def point(f):
        m = f["teacher_forced"]["accuracy"] if metric == "accuracy" else f["closed_loop"]["success"]
        v = m["value"] if metric == "accuracy" else m["rate"]
        return (np.nan, [0, 0]) if v is None else (v, m["ci95"] or [v, v])

    for ax, t in zip(axes[0], tasks):
        d = results["by_task"][t]
        for i, arm in enumerate(results["arms"]):
            vals = [point(d["arms"][arm][str(n)]) for n in eps]
            y = np.array([v for v, _ in vals])
            err = np.array([[v - ci[0] for v, ci in vals], [ci[1] - v for v, ci in vals]])
            ax.errorbar(np.array(eps) * (1 + 0.04 * (i - 1)), y, yerr=np.clip(err, 0, None), marker="o",
                        ms=3, lw=1, capsize=2, label=arm)
        z, _ = point(d["zero_shot"])
        ax.axhline(z, color="grey", lw=0.8, ls="--", label=ZERO_SHOT)
        ax.set_xscale("log")
        ax.set_xticks(eps, [str(n) for n in eps])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0, 1.02)
        ax.set_title(t.replace("_", " "), fontsize=7)
        ax.set_xlabel("train episodes of the held-out task", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0][0].set_ylabel("teacher-forced accuracy" if metric == "accuracy" else "closed-loop success",
                          fontsize=7)
    axes[0][0].legend(fontsize=5)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
