"""``annobc study emergence``: finding 1 of the study. Mechanics before decisions; fewer mistakes
than the data; corrections kept.

One training run with checkpoints on a log-spaced schedule (``run.keep_steps``). Each checkpoint is
scored teacher-forced on the val split (per-window hit flags kept, for bootstrap intervals); a
subset of them closed loop on the test seeds; the last one also from annotator states that hold an
uncorrected mistake (mistake recovery). Then:

- per task and overall, the step at which each skill reaches ``reach_fraction`` (0.9) of its final
  value, with a bootstrap interval over val windows, and the paper's ordering (action validity and
  the non-decision buttons before placement and decisions) as holds / does not hold;
- the policy's closed-loop mistake rate against its training data's, with Wilson intervals;
- the policy's mistake-recovery rate against the annotator's from the same states, and its
  correction behaviour in closed loop against the data's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from annobc.study.common import (code_text, Study, StudyError, atomic_save_npz, checkpoint_dir, ci_int, ci_pct,
                                 dataset_unit, intf, log_steps, num, pct, percentile_ci, proportion,
                                 provenance, pyplot, reach_step, screen_and_variant, spread, table,
                                 tasks_of, test_seeds, train_overrides, train_unit, write_outputs)
from annobc.tasks.base import BUTTON_CATEGORIES, CATEGORIES

# Skill -> (the categories of the windows it is scored on (None: all), the per-window flag).
SKILLS: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "validity": (None, "valid_action"),
    "buttons": (BUTTON_CATEGORIES, "same_element"),
    "controls": (("navigate", "view", "undo", "done"), "same_element"),
    "navigate": (("navigate",), "same_element"),
    "view": (("view",), "same_element"),
    "undo": (("undo",), "same_element"),
    "done": (("done",), "same_element"),
    "decisions": (("select",), "same_element"),
    "placement@2": (("place",), "dist2"),
    "placement@5": (("place",), "dist5"),
}
SKILL_LABELS = {"validity": "validity", "buttons": "buttons (all)",
                "controls": "buttons excl. select", "navigate": "navigate", "view": "view",
                "undo": "UNDO", "done": "DONE", "decisions": "decisions (select)",
                "placement@2": "placement@2", "placement@5": "placement@5"}
# The paper's ordering: the GUI's mechanics (clicking something that reacts; which button) before
# the decisions (where exactly to place; which class). Select clicks are decisions, so the
# mechanics' buttons are the other buttons ("controls").
MECHANICS = ("validity", "controls")
DECISIONS = ("placement@5", "decisions")
PLOTTED = ("validity", "controls", "decisions", "placement@5", "placement@2")
OVERALL = "overall"


def plan_runs(study: Study) -> dict:
    """The study's units without running them: datasets, the training run, evaluations."""
    c = study.cfg
    steps = log_steps(c["first_step"], c["train_steps"], c["checkpoints"])
    cl_steps = spread(steps, c["closed_loop_checkpoints"])
    data = study.out / "data"
    return {
        "datasets": [{"unit": "data", "path": str(data), "tasks": list(tasks_of(c["tasks"])),
                      "episodes_per_task": c["episodes_per_task"], "screen": c["screen"]}],
        "train": [{"unit": "train-policy", "run": "policy", "base_config": c["base_config"],
                   "launcher": c["launcher"],
                   "overrides": train_overrides(study, "policy", data, c["model_preset"],
                                                c["model_overrides"], c["train_steps"], steps)}],
        "checkpoint_steps": steps, "closed_loop_steps": cl_steps,
        # at most: windows scored teacher-forced, frames seen closed loop (capped episodes)
        "evaluation_load": {
            "tf_windows": len(steps) * len(tasks_of(c["tasks"])) * c["tf_windows"],
            "closed_loop_frames": ((len(cl_steps) - 1) * c["closed_loop_episodes"]
                                   + c["final_closed_loop_episodes"] + c["recovery_seeds"])
            * len(tasks_of(c["tasks"]))
            * c["closed_loop_max_steps"]},
        "evaluations": ([f"tf-step-{s:07d}" for s in steps] + [f"cl-step-{s:07d}" for s in cl_steps]
                        + [f"recovery-step-{steps[-1]:07d}", "data-behaviour"]),
    }


def run(study: Study) -> dict:
    from annobc.data import EpisodeStore, Plan, parse_task_params

    c = study.cfg
    tasks = tasks_of(c["tasks"])
    plan = plan_runs(study)
    steps, cl_steps = plan["checkpoint_steps"], plan["closed_loop_steps"]
    if len(steps) < 2:
        raise StudyError(f"the checkpoint schedule needs at least 2 steps, got {steps}")
    data = study.out / "data"
    dplan = Plan(tasks=tasks, episodes_per_task=c["episodes_per_task"], seed=c["seed"],
                 screen=tuple(c["screen"]), params=parse_task_params(c["params"]))
    dunit = dataset_unit(study, "data", data, dplan)
    tr = train_unit(study, "policy", plan["train"][0]["overrides"])
    missing = [s for s in steps if not (checkpoint_dir(tr["run_dir"], s) / "state.json").exists()]
    if missing:
        raise StudyError(f"run {tr['run_dir']} lacks the checkpoints of steps {missing}")
    store = EpisodeStore(data)

    # -- teacher-forced at every checkpoint -------------------------------------------------------------
    bar = study.bar(len(steps), "teacher-forced", "ckpt")
    tf = {}
    for s in steps:
        tf[s] = study.unit(f"tf-step-{s:07d}", lambda s=s: tf_unit(study, store, tr["run_dir"], s, tasks))
        bar.update(1)
    bar.close()
    # -- closed loop at a subset, mistake recovery at the last --------------------------------------------
    cl = {}
    for s in cl_steps:
        cl[s] = study.unit(f"cl-step-{s:07d}", lambda s=s: cl_unit(study, store, tr["run_dir"], s, tasks))
    final = steps[-1]
    rec = study.unit(f"recovery-step-{final:07d}",
                     lambda: recovery_unit(study, store, tr["run_dir"], final, tasks))
    beh = study.unit("data-behaviour", lambda: data_behaviour(store, tasks))

    # -- analysis ------------------------------------------------------------------------------------------
    rows = load_rows(study, steps)
    skills, ordering = analyse_skills(rows, steps, tasks, c)
    mistakes = compare_mistakes(cl[final]["by_task"], beh["by_task"])
    corrections = compare_corrections(cl[final]["by_task"], rec["by_task"], beh["by_task"])
    results = {
        "study": "emergence", "scale": study.scale,
        "provenance": provenance(
            study, dataset=str(data), dataset_card_sha256=dunit["card_sha256"],
            run_dir=tr["run_dir"], model_params=tr["params"], train_steps=tr["step"],
            seeds={"data_base_seed": c["seed"], "train_seed": c["seed"],
                   "closed_loop_test_seeds": [cl[final]["seeds"][0], cl[final]["seeds"][-1]],
                   "recovery_test_seeds": [rec["seeds"][0], rec["seeds"][-1]] if rec["seeds"] else [],
                   "bootstrap_seed": c["seed"]},
            checkpoint_steps=steps, closed_loop_steps=cl_steps, recovery_step=final,
            val_windows_per_task=c["tf_windows"], bootstrap_reps=c["bootstrap"]),
        "teacher_forced": {"steps": steps, "by_step": {str(s): tf_figures(tf[s]) for s in steps}},
        "skills": skills, "ordering": ordering,
        "closed_loop": {"steps": cl_steps,
                        "by_step": {str(s): cl[s]["by_task"] for s in cl_steps}},
        "mistake_recovery": rec["by_task"], "training_data": beh["by_task"],
        "mistakes": mistakes, "corrections": corrections,
    }
    results["verdicts"] = verdict_summary(results)
    lines = report(results, study.out)
    write_outputs(study.out, results, lines)
    return results


# -- units ----------------------------------------------------------------------------------------------
def tf_unit(study: Study, store, run_dir: str, step: int, tasks) -> dict:
    from annobc.learning.checkpoint import load_policy
    from annobc.learning.loss import LossConfig
    from annobc.learning.teacher_forced import teacher_forced

    c = study.cfg
    model, state = load_policy(checkpoint_dir(run_dir, step), c["device"])
    m = teacher_forced(model, store, "val", max_windows=c["tf_windows"], batch_size=c["tf_batch"],
                       device=c["device"], tasks=list(tasks), return_rows=True,
                       loss=LossConfig(**state["train_config"]["loss"]))
    rows = m.pop("rows")
    name = f"tf-step-{step:07d}.npz"
    task_index = {t: i for i, t in enumerate(tasks)}
    atomic_save_npz(study.out / "units" / name,
                    task=np.array([task_index[t] for t in rows["task"]], np.int16),
                    category=rows["category"].astype(np.int8), hit=rows["hit"],
                    dist=rows["dist"].astype(np.float32), valid_action=rows["valid_action"],
                    same_element=rows["same_element"])
    return {"step": step, "checkpoint": str(checkpoint_dir(run_dir, step)), "rows": name,
            "tasks": list(tasks), "teacher_forced": m}


def behaviour_counts(records) -> dict:
    """Counts of what a set of episodes did (one task): annotations, wrong ones, corrections."""
    steps = [s for r in records for s in r.steps]
    return {"episodes": len(records), "successes": int(sum(r.success for r in records)),
            "done": int(sum(r.done for r in records)), "clicks": len(steps),
            "annotations": int(sum(s.annotated for s in steps)),
            "mistakes": int(sum(s.is_mistake for s in steps)),
            "corrections": int(sum(s.is_correction for s in steps)),
            "undo": int(sum(s.category == "undo" for s in steps)),
            "place": int(sum(s.category == "place" for s in steps))}


def cl_unit(study: Study, store, run_dir: str, step: int, tasks) -> dict:
    from annobc.eval.closed_loop import closed_loop, closed_loop_metrics
    from annobc.learning.checkpoint import load_policy

    c = study.cfg
    model, _ = load_policy(checkpoint_dir(run_dir, step), c["device"])
    screen, theme, variant = screen_and_variant(store)
    final = step == log_steps(c["first_step"], c["train_steps"], c["checkpoints"])[-1]
    seeds = test_seeds(store, c["final_closed_loop_episodes" if final else "closed_loop_episodes"])
    params = {t: v["params"] for t, v in store.card.get("tasks", {}).items()}
    bar = study.bar(len(tasks) * len(seeds), f"closed loop step {step}", "ep")
    rollouts = closed_loop(model, list(tasks), seeds, c["temperature"], c["closed_loop_max_steps"],
                           screen, theme, c["device"], name=f"step{step}",
                           batch_size=c["closed_loop_batch"], progress=bar, params=params,
                           ui_variant=variant)
    bar.close()
    by_task = {}
    for t in tasks:
        recs = [r.record for r in rollouts[t]]
        m = closed_loop_metrics(recs)
        by_task[t] = {**{k: m[k] for k in ("episodes", "success_rate", "success_ci95", "done_rate",
                                            "mean_length", "action_validity", "mistake_rate",
                                            "correction_rate", "score")},
                      "counts": behaviour_counts(recs)}
    return {"step": step, "seeds": seeds, "temperature": c["temperature"],
            "max_steps": c["closed_loop_max_steps"], "ui_variant": variant, "by_task": by_task}


def recovery_unit(study: Study, store, run_dir: str, step: int, tasks) -> dict:
    from annobc.eval.closed_loop import mistake_recovery
    from annobc.learning.checkpoint import load_policy

    c = study.cfg
    model, _ = load_policy(checkpoint_dir(run_dir, step), c["device"])
    screen, theme, variant = screen_and_variant(store)
    seeds = test_seeds(store, c["recovery_seeds"])
    params = {t: v["params"] for t, v in store.card.get("tasks", {}).items()}
    by_task = {}
    bar = study.bar(len(tasks), f"mistake recovery step {step}", "task")
    for t in tasks:
        r = mistake_recovery(model, t, seeds, screen, theme, horizon=c["recovery_horizon"],
                             temperature=c["recovery_temperature"], device=c["device"],
                             batch_size=c["closed_loop_batch"], params=params.get(t),
                             ui_variant=variant)
        n = r["states"]
        by_task[t] = {"states": n, "horizon": r["horizon"],
                      **{k: int(round((r[k] or 0) * n)) for k in
                         ("policy_removed_mistake", "policy_pressed_undo", "annotator_removed_mistake",
                          "expert_removed_mistake")}}
        bar.update(1)
    bar.close()
    return {"step": step, "seeds": seeds, "by_task": by_task}


def data_behaviour(store, tasks) -> dict:
    """The training split's behaviour counts per task (the demonstrations the policy copied)."""
    by_task = {}
    for t in tasks:
        eids = [e for e in store.episode_ids("train", [t])
                if not store.meta(e)["persona"].startswith("policy:")]
        cnt = {"episodes": len(eids), "successes": 0, "done": 0, "clicks": 0, "annotations": 0,
               "mistakes": 0, "corrections": 0, "undo": 0, "place": 0}
        for e in eids:
            m, st = store.meta(e), store.steps(e)
            cnt["successes"] += bool(m["success"])
            cnt["done"] += bool(m["done"])
            cnt["clicks"] += len(st["category"])
            cnt["annotations"] += int(np.sum(st["annotated"]))
            cnt["mistakes"] += int(np.sum(st["is_mistake"]))
            cnt["corrections"] += int(np.sum(st["is_correction"]))
            cnt["undo"] += int(np.sum(st["category"] == "undo"))
            cnt["place"] += int(np.sum(st["category"] == "place"))
        by_task[t] = {"counts": cnt}
    return {"split": "train", "by_task": by_task}


# -- analysis -------------------------------------------------------------------------------------------
def tf_figures(unit: dict) -> dict:
    """The figures of one checkpoint's teacher-forced unit, overall and per task."""
    m = unit["teacher_forced"]
    keys = ("n", "accuracy", "validity", "button_accuracy", "decision_accuracy", "placement@2",
            "placement@5", "accuracy_by_category", "count_by_category")
    out = {k: m[k] for k in keys if k in m}
    out["nll"] = m.get("nll")
    out["by_task"] = {t: {k: v[k] for k in keys if k in v} for t, v in m["by_task"].items()}
    return out


def load_rows(study: Study, steps: list[int]) -> dict:
    """Per-window flags of every checkpoint, stacked: task (n,), category (n,), and per skill flags
    (n_checkpoints, n). The same windows are scored at every checkpoint (a fixed val stream)."""
    arrays = []
    for s in steps:
        with np.load(study.out / "units" / f"tf-step-{s:07d}.npz") as z:
            arrays.append({k: z[k] for k in z.files})
    first = arrays[0]
    for s, a in zip(steps, arrays):
        if not (np.array_equal(a["task"], first["task"]) and np.array_equal(a["category"], first["category"])):
            raise StudyError(f"teacher-forced windows of step {s} differ from those of step {steps[0]}")
    flags = {"valid_action": np.stack([a["valid_action"] for a in arrays]),
             "same_element": np.stack([a["same_element"] for a in arrays]),
             "dist2": np.stack([a["dist"] <= 2 for a in arrays]),
             "dist5": np.stack([a["dist"] <= 5 for a in arrays])}
    return {"task": first["task"].astype(int), "category": first["category"].astype(int), "flags": flags}


def skill_mask(category: np.ndarray, cats) -> np.ndarray:
    if cats is None:
        return np.ones(len(category), bool)
    return np.isin(category, [CATEGORIES.index(c) for c in cats])


def analyse_skills(rows: dict, steps: list[int], tasks, c: dict) -> tuple[dict, dict]:
    """Per group (each task and overall): each skill's curve, final value, the step it reaches
    ``reach_fraction`` of its final value with a bootstrap interval over val windows; and the
    ordering verdict."""
    rng = np.random.default_rng(c["seed"])
    reps, frac = int(c["bootstrap"]), float(c["reach_fraction"])
    groups = {t: np.flatnonzero(rows["task"] == i) for i, t in enumerate(tasks)}
    groups = {t: idx for t, idx in groups.items() if len(idx)}
    # Bootstrap resamples of each task's windows; overall resamples within each task (stratified).
    weights = {t: _weights(len(idx), reps, rng) for t, idx in groups.items()}
    all_idx = np.concatenate(list(groups.values()))
    weights[OVERALL] = np.concatenate([weights[t] for t in groups], axis=1)
    groups = {OVERALL: all_idx, **groups}
    skills, ordering = {}, {}
    for g, idx in groups.items():
        W = weights[g]
        out = {}
        boot_t = {}
        for name, (cats, flag) in SKILLS.items():
            mask = skill_mask(rows["category"][idx], cats).astype(float)
            F = rows["flags"][flag][:, idx].astype(float)  # (C, n)
            n = int(mask.sum())
            entry = {"n": n, "curve": None, "final": None, "t90_step": None, "ci95": None,
                     "censored": None, "status": "not measured"}
            if n >= max(1, int(c["min_windows"])):
                curve = (F * mask).sum(1) / n
                entry.update(curve=[float(v) for v in curve], final=float(curve[-1]))
                if curve[-1] < c["learned_floor"]:
                    entry["status"] = "not learned"
                else:
                    t, cens = reach_step(curve[None], steps, frac)
                    den = W @ mask  # (B,)
                    with np.errstate(invalid="ignore", divide="ignore"):
                        vb = ((W * mask) @ F.T) / den[:, None]  # (B, C)
                    tb, _ = reach_step(np.nan_to_num(vb), steps, frac)
                    tb = np.where((den > 0) & (vb[:, -1] >= c["learned_floor"]), tb, np.nan)
                    boot_t[name] = tb
                    ci = percentile_ci(tb)
                    entry.update(t90_step=int(round(float(t[0]))), censored=bool(cens[0]),
                                 ci95=[int(round(ci[0])), int(round(ci[1]))] if ci else None,
                                 status="measured")
            out[name] = entry
        skills[g] = out
        ordering[g] = order_verdict(out, boot_t)
    return skills, ordering


def _weights(n: int, reps: int, rng) -> np.ndarray:
    from annobc.study.common import bootstrap_weights

    return bootstrap_weights(n, reps, rng)


def order_verdict(sk: dict, boot: dict) -> dict:
    mech = [s for s in MECHANICS if sk[s]["status"] == "measured"]
    dec = [s for s in DECISIONS if sk[s]["status"] == "measured"]
    out = {"mechanics": mech, "decisions": dec, "mechanics_step": None, "decisions_step": None,
           "bootstrap_support": None}
    if not mech or not dec:
        group, names = ("mechanics", MECHANICS) if not mech else ("decision", DECISIONS)
        why = f"no {group} skill learned and measured (" + ", ".join(
            f"{n} {sk[n]['status']}" for n in names) + ")"
        return {**out, "verdict": "not testable", "reason": why}
    m_step = max(sk[s]["t90_step"] for s in mech)
    d_step = min(sk[s]["t90_step"] for s in dec)
    mb = np.max(np.stack([boot[s] for s in mech]), axis=0)
    db = np.min(np.stack([boot[s] for s in dec]), axis=0)
    ok = np.isfinite(mb) & np.isfinite(db)
    support = float(np.mean(mb[ok] <= db[ok])) if ok.any() else None
    holds = m_step <= d_step
    return {**out, "mechanics_step": m_step, "decisions_step": d_step, "bootstrap_support": support,
            "verdict": "holds" if holds else "does not hold",
            "reason": f"mechanics by step {m_step}, decisions from step {d_step}"}


def compare_mistakes(policy: dict, data: dict) -> dict:
    out = {}
    for t in policy:
        p, d = policy[t]["counts"], data[t]["counts"]
        pp = proportion(p["mistakes"], p["annotations"])
        dd = proportion(d["mistakes"], d["annotations"])
        entry = {"policy": pp, "data": dd, "significant": None}
        if not pp["n"]:
            entry["verdict"] = "not testable"
            entry["reason"] = "the policy made no annotation"
        elif not dd["n"]:
            entry["verdict"] = "not testable"
            entry["reason"] = "the data holds no annotation"
        else:
            entry["verdict"] = "holds" if pp["rate"] < dd["rate"] else "does not hold"
            entry["significant"] = bool(pp["ci95"][1] < dd["ci95"][0] or pp["ci95"][0] > dd["ci95"][1])
        out[t] = entry
    return out


def compare_corrections(policy: dict, recovery: dict, data: dict) -> dict:
    out = {}
    for t in policy:
        r = recovery[t]
        p, d = policy[t]["counts"], data[t]["counts"]
        pol = proportion(r["policy_removed_mistake"], r["states"])
        ann = proportion(r["annotator_removed_mistake"], r["states"])
        entry = {"states": r["states"], "horizon": r["horizon"], "policy_removed": pol,
                 "annotator_removed": ann,
                 "expert_removed": proportion(r["expert_removed_mistake"], r["states"]),
                 "policy_pressed_undo": proportion(r["policy_pressed_undo"], r["states"]),
                 "policy_correction_rate": proportion(p["undo"], p["undo"] + p["place"]),
                 "data_correction_rate": proportion(d["undo"], d["undo"] + d["place"]),
                 # corrective clicks per wrong annotation (one mistake may take several clicks to
                 # undo, so this is a ratio, not a proportion)
                 "policy_corrections_per_mistake": ratio(p["corrections"], p["mistakes"]),
                 "data_corrections_per_mistake": ratio(d["corrections"], d["mistakes"])}
        if not r["states"]:
            entry["verdict"], entry["reason"] = "not testable", "no annotator state with a mistake"
        elif pol["k"] == 0:
            entry["verdict"], entry["reason"] = "does not hold", "the policy removed no mistake"
        elif ann["n"] and pol["ci95"][1] < ann["ci95"][0]:
            entry["verdict"] = "does not hold"
            entry["reason"] = "the policy removes mistakes significantly less often than the annotator"
        else:
            entry["verdict"] = "holds"
            entry["reason"] = "the policy removes mistakes, not significantly less often than the annotator"
        out[t] = entry
    return out


def ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def verdict_summary(results: dict) -> dict:
    def count(d: dict) -> dict:
        vs = [v["verdict"] for v in d.values()]
        return {k: vs.count(k) for k in ("holds", "does not hold", "not testable")}

    per_task = {k: v for k, v in results["ordering"].items() if k != OVERALL}
    return {"ordering_overall": results["ordering"][OVERALL]["verdict"],
            "ordering_tasks": count(per_task), "fewer_mistakes_tasks": count(results["mistakes"]),
            "corrections_kept_tasks": count(results["corrections"])}


# -- report ---------------------------------------------------------------------------------------------
def report(results: dict, out: Path) -> list[str]:
    prov = results["provenance"]
    steps = results["teacher_forced"]["steps"]
    tasks = [t for t in results["skills"] if t != OVERALL]
    fracp = int(round(100 * prov["settings"]["reach_fraction"]))
    L = ["# Study: skill emergence, mistakes and corrections (finding 1)", "",
         f"Scale `{results['scale']}`. {code_text(prov)}; dataset `{prov['dataset']}` "
         f"(card sha256 `{prov['dataset_card_sha256'][:16]}...`); one run of "
         f"{prov['train_steps']} steps ({prov['model_params']} parameters, seed "
         f"{prov['seeds']['train_seed']}), checkpoints at steps {', '.join(map(str, steps))}.",
         f"Teacher-forced on the val split ({prov['val_windows_per_task']} windows per task, the same "
         f"windows at every checkpoint); closed loop at steps "
         f"{', '.join(map(str, prov['closed_loop_steps']))} on test seeds from "
         f"{prov['seeds']['closed_loop_test_seeds'][0]} ({prov['settings']['closed_loop_episodes']} "
         f"episodes per task, {prov['settings']['final_closed_loop_episodes']} at the last step; "
         f"temperature {prov['settings']['temperature']}, at most "
         f"{prov['settings']['closed_loop_max_steps']} clicks); mistake recovery at step "
         f"{prov['recovery_step']}. Every figure below is in `results.json`.", "",
         "## Verdicts", ""]
    v = results["verdicts"]
    L += [f"- Mechanics before decisions, all tasks pooled: **{v['ordering_overall']}**; per task: "
          + ", ".join(f"{k} {n}" for k, n in v["ordering_tasks"].items()) + ".",
          "- Fewer mistakes than the data (closed loop, final checkpoint), per task: "
          + ", ".join(f"{k} {n}" for k, n in v["fewer_mistakes_tasks"].items()) + ".",
          "- Corrections kept (mistake recovery), per task: "
          + ", ".join(f"{k} {n}" for k, n in v["corrections_kept_tasks"].items()) + ".", ""]
    # teacher-forced by checkpoint
    L += ["## Teacher-forced skills over training (all tasks)", "",
          "Validity: the predicted click hits a button or the canvas; buttons: button targets on the "
          "same button (navigate, view, select, UNDO, DONE); decisions: select targets (class, tool, "
          "...) on the same button; placement@k: canvas targets within k px; nll: the click's "
          "negative log-likelihood (nats).", ""]
    cols = ("validity", "button_accuracy", "decision_accuracy", "placement@2", "placement@5")
    rows = []
    for s in steps:
        f = results["teacher_forced"]["by_step"][str(s)]
        abc = f.get("accuracy_by_category", {})
        rows.append([s, *[pct(f.get(k)) for k in cols],
                     *[pct(abc.get(k)) for k in ("navigate", "view", "undo", "done")], num(f.get("nll"))])
    L += table(["step", "validity", "buttons", "decisions", "placement@2", "placement@5", "navigate",
                "view", "UNDO", "DONE", "nll"], rows)
    L += ["", "![skill curves](skill_curves.png)", ""]
    # emergence steps
    L += [f"## Step at which each skill reaches {fracp}% of its final value", "",
          f"Per task and pooled, interpolated in log(step) between checkpoints; 95% bootstrap interval "
          f"over val windows ({prov['bootstrap_reps']} resamples; windows of one episode are "
          f"correlated, so the intervals are if anything too narrow). `<=` marks a skill already there "
          f"at the first checkpoint; `not learned`: final value under "
          f"{pct(prov['settings']['learned_floor'])}; `-`: fewer than {prov['settings']['min_windows']} "
          f"windows.", ""]
    shown = ("validity", "controls", "buttons", "decisions", "placement@2", "placement@5", "undo", "done")
    rows = []
    for g in [OVERALL, *tasks]:
        cells = []
        for s in shown:
            e = results["skills"][g][s]
            if e["status"] == "measured":
                cells.append(f"{'<=' if e['censored'] else ''}{e['t90_step']} {ci_int(e['ci95'])} "
                             f"(final {pct(e['final'])})")
            else:
                cells.append("not learned" if e["status"] == "not learned" else "-")
        rows.append([g, *cells])
    L += table(["task", *[SKILL_LABELS[s] for s in shown]], rows)
    L += ["", "## Mechanics before decisions", "",
          "The paper's ordering, tested per task: holds when every mechanics skill (validity; the "
          "buttons other than select) reaches its mark no later than any decision skill (placement@5; "
          "select). Support: the share of bootstrap resamples in which it holds.", ""]
    rows = []
    for g in [OVERALL, *tasks]:
        o = results["ordering"][g]
        rows.append([g, intf(o["mechanics_step"]), intf(o["decisions_step"]),
                     pct(o["bootstrap_support"]), f"**{o['verdict']}**",
                     o["reason"] if o["verdict"] == "not testable" else ""])
    L += table(["task", "mechanics by step", "decisions from step", "support", "verdict", "why"], rows)
    # closed loop
    L += ["", "## Closed loop over training", "",
          "Success with its 95% Wilson interval; mistake rate: wrong annotations / annotations made; "
          "correction rate: UNDO / (place + UNDO); done: episodes ended with DONE.", ""]
    rows = []
    for t in tasks:
        for s in results["closed_loop"]["steps"]:
            m = results["closed_loop"]["by_step"][str(s)][t]
            rows.append([t, s, f"{pct(m['success_rate'])} {ci_pct(m['success_ci95'])}",
                         pct(m["mistake_rate"]), pct(m["correction_rate"]), pct(m["done_rate"]),
                         num(m["mean_length"], 1)])
    L += table(["task", "step", "success", "mistake rate", "correction rate", "done", "length"], rows)
    # mistakes
    L += ["", "## Fewer mistakes than the data", "",
          "The final checkpoint's closed-loop mistake rate (wrong annotations / annotations made) "
          "against its training data's (the train split), with 95% Wilson intervals. Holds when the "
          "policy's rate is the lower; significant: the intervals are disjoint.", ""]
    rows = []
    for t, e in results["mistakes"].items():
        p, d = e["policy"], e["data"]
        rows.append([t, f"{pct(p['rate'])} {ci_pct(p['ci95'])}", p["n"],
                     f"{pct(d['rate'])} {ci_pct(d['ci95'])}", d["n"],
                     "-" if e["significant"] is None else ("yes" if e["significant"] else "no"),
                     f"**{e['verdict']}**"])
    L += table(["task", "policy mistake rate", "policy annotations", "data mistake rate",
                "data annotations", "significant", "verdict"], rows)
    L += ["", "![mistake rates](mistake_rates.png)", "",
          "## Corrections kept", "",
          "Mistake recovery: sessions start from the annotator's state right after its first "
          "uncorrected mistake (its own history as context); removed: the wrong count drops within "
          "the horizon. The annotator's and the expert's rates are from the same states. Holds when "
          "the policy removes mistakes and not significantly less often than the annotator (Wilson "
          "intervals). Beside it, closed loop: the policy's corrective clicks per wrong annotation of "
          "its own and its correction rate, against the data's.", ""]
    rows = []
    for t, e in results["corrections"].items():
        rows.append([t, e["states"], f"{pct(e['policy_removed']['rate'])} {ci_pct(e['policy_removed']['ci95'])}",
                     f"{pct(e['annotator_removed']['rate'])} {ci_pct(e['annotator_removed']['ci95'])}",
                     pct(e["expert_removed"]["rate"]), num(e["policy_corrections_per_mistake"]),
                     num(e["data_corrections_per_mistake"]), pct(e["policy_correction_rate"]["rate"]),
                     pct(e["data_correction_rate"]["rate"]), f"**{e['verdict']}**"])
    L += table(["task", "states", "policy removed", "annotator removed", "expert removed",
                "policy corrections per mistake", "data corrections per mistake", "policy correction rate",
                "data correction rate", "verdict"], rows)
    plot_skills(results, out / "skill_curves.png")
    plot_mistakes(results, out / "mistake_rates.png")
    return L


def plot_skills(results: dict, path: Path) -> None:
    plt = pyplot()
    from matplotlib.ticker import NullFormatter

    steps = results["teacher_forced"]["steps"]
    groups = [OVERALL] + [t for t in results["skills"] if t != OVERALL]
    ncol = min(5, len(groups))
    nrow = -(-len(groups) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.1 * nrow), squeeze=False, sharey=True)
    for ax in axes.flat[len(groups):]:
        ax.axis("off")
    for ax, g in zip(axes.flat, groups):
        for s in PLOTTED:
            e = results["skills"][g][s]
            if e["curve"] is not None:
                ax.plot(steps, e["curve"], marker="o", ms=2, lw=1, label=SKILL_LABELS[s])
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0, 1.02)
        ax.set_title(g.replace("_", " "), fontsize=7)
        ax.tick_params(labelsize=6)
    axes.flat[0].legend(fontsize=5, loc="lower right")
    fig.supxlabel("training step (log)", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_mistakes(results: dict, path: Path) -> None:
    plt = pyplot()
    tasks = list(results["mistakes"])
    fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(tasks) + 1), 2.6))
    x = np.arange(len(tasks))
    for off, who, color in ((-0.2, "policy", "C0"), (0.2, "data", "C1")):
        rates = np.array([results["mistakes"][t][who]["rate"] or 0.0 for t in tasks])
        cis = [results["mistakes"][t][who]["ci95"] or [0.0, 0.0] for t in tasks]
        err = np.array([[r - c[0] for r, c in zip(rates, cis)], [c[1] - r for r, c in zip(rates, cis)]])
        ax.bar(x + off, rates, 0.4, yerr=np.clip(err, 0, None), capsize=2, color=color, label=who)
    ax.set_xticks(x, [t.replace("_", "\n", 1) for t in tasks], fontsize=6)
    ax.set_ylabel("mistake rate", fontsize=7)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
