"""``annobc study variants``: GUI robustness. The published model, fine-tuned on 8 GUI layouts,
kept working on 3 layouts it had not seen.

GUI variants (``annobc.gui.UI_VARIANTS``, docs/tasks/variants.md) show every task in another layout
of the same screen: the buttons on another side, another theme, another button order or size, a
larger font. A variant changes how a scene is shown, never the scene: the same seed is the same
scene, the same annotator decisions, in every variant. The study holds some variants out
(``held_out_variants``) and trains three arms on the same tasks:

- ``variants``: trained on ``train_episodes_per_task`` episodes per task shown in the training
  variants (``training_variants``; episode i of each task in variant i mod k), ``train_steps``;
- ``default``: the same episodes (the same scenes) shown in the default variant only, the same steps;
- ``default-finetuned``: ``default`` fine-tuned on ``finetune_episodes_per_task`` new episodes per
  task shown in the held-out variants, ``finetune_steps`` steps, with the ``finetune`` recipe (as
  published: LR 3e-5, the backbone at 0.01x; ``common.recipe_overrides``): what a few episodes of
  the new layouts buy a model that knows one layout.

No held-out variant is in the training of ``variants`` or ``default``. Every arm is scored on three
evaluation sets: ``held-out`` (the held-out variants), ``training`` (the training variants) and
``default`` (the default variant). Each set is a val dataset of its own holding the same val seeds
(the same scenes) in its variants, episode i in variant i mod k, never trained on. Teacher-forced:
the same windows for every arm within a set, hit-tested in each window's variant (accuracy etc.
with 95% intervals from bootstrap resamples of the windows, one set of resamples per evaluation
set, so arms are paired within a set and sets are independent); closed loop: the same test seeds in
every set, seed i shown in variant i mod k of the set (success with its Wilson interval; one set of
resamples of the scenes, so every difference of success is paired by scene).

Then, from the numbers (each a difference with its 95% interval, pooled over tasks and per task):

- *works on unseen variants*, per figure (teacher-forced accuracy, closed-loop success): holds when
  the ``variants`` model's held-out figure is not significantly below its training-variant figure
  (the interval of the difference does not lie below 0) and is above the ``default`` model's
  held-out figure (whether significantly is said); not testable where all three figures are 0
  (a model that learnt nothing has nothing to lose);
- *what the fine-tune recovers*: the ``default`` model's loss from the default variant to the
  held-out ones, the fine-tune's gain over it on the held-out variants, the share of the loss that
  gain wins back, and whether it reaches the ``variants`` model;
- *in-distribution cost*: the ``variants`` and ``default-finetuned`` models against ``default`` on
  the default variant (what diversity, or fine-tuning, costs the layout a model knew).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from annobc.study.common import (code_text, Study, StudyError, bootstrap_weights, ci_pct, cpu_estimate,
                                 dataset_unit, num, pct, percentile_ci, proportion, provenance,
                                 pyplot, recipe_overrides, table, tasks_of, test_seeds,
                                 train_overrides, train_unit, trained_optim, write_outputs)
from annobc.study.scaling import CATEGORY_COLUMNS, train_plan, val_plan
from annobc.study.transfer import TF_METRICS, cl_unit, load_rows, lr_text, metric_samples, tf_unit

VARIANTS, DEFAULT, FINETUNED = "variants", "default", "default-finetuned"
ARMS = (VARIANTS, DEFAULT, FINETUNED)
HELD_OUT, TRAINING = "held-out", "training"
SETS = (HELD_OUT, TRAINING, DEFAULT)  # evaluation sets; DEFAULT: the default variant alone
# (name, (arm, set) minus (arm, set), what the difference says); every one is reported for
# teacher-forced accuracy and closed-loop success, pooled and per task.
COMPARISONS = (
    ("robustness", (VARIANTS, HELD_OUT), (VARIANTS, TRAINING),
     "`variants`: held-out variants minus training variants"),
    ("vs_default", (VARIANTS, HELD_OUT), (DEFAULT, HELD_OUT),
     "held-out variants: `variants` minus `default`"),
    ("default_loss", (DEFAULT, HELD_OUT), (DEFAULT, DEFAULT),
     "`default`: held-out variants minus the default variant"),
    ("finetune_gain", (FINETUNED, HELD_OUT), (DEFAULT, HELD_OUT),
     "held-out variants: `default-finetuned` minus `default`"),
    ("finetune_vs_variants", (FINETUNED, HELD_OUT), (VARIANTS, HELD_OUT),
     "held-out variants: `default-finetuned` minus `variants`"),
    ("diversity_cost", (VARIANTS, DEFAULT), (DEFAULT, DEFAULT),
     "default variant: `variants` minus `default`"),
    ("forgetting", (FINETUNED, DEFAULT), (DEFAULT, DEFAULT),
     "default variant: `default-finetuned` minus `default`"),
)
FIGURES = ("accuracy", "success")  # teacher-forced accuracy, closed-loop success


# -- the plan ---------------------------------------------------------------------------------------
def variant_names(c: dict, key: str) -> tuple[str, ...]:
    """A variant setting (a list or "a,b,c") resolved; an unknown name fails in one line."""
    from annobc.gui import resolve_variants

    spec = c[key]
    try:
        names = resolve_variants(spec if isinstance(spec, str) else ",".join(map(str, spec)))
    except ValueError as e:
        raise StudyError(f"{key}: {e}") from None
    if len(set(names)) != len(names):
        raise StudyError(f"{key} names a variant twice: {list(names)}")
    return names


def variant_sets(c: dict) -> dict[str, tuple[str, ...]]:
    """Evaluation set -> its GUI variants: the held-out ones, the training ones, the default."""
    from annobc.gui import DEFAULT_VARIANT

    held, training = variant_names(c, "held_out_variants"), variant_names(c, "training_variants")
    seen = set(held) & set(training)
    if seen:
        raise StudyError(f"held-out variants must not be trained on: {', '.join(sorted(seen))} "
                         f"are in both held_out_variants and training_variants")
    if DEFAULT_VARIANT in held:
        raise StudyError(f"the {DEFAULT_VARIANT!r} variant is the default model's training data; "
                         f"it cannot be held out")
    return {HELD_OUT: held, TRAINING: training, DEFAULT: (DEFAULT_VARIANT,)}


def shown_in(plan, variants) -> object:
    """A dataset plan with its episodes shown in ``variants`` (episode i in variant i mod k)."""
    return replace(plan, ui_variant=",".join(variants))


def dataset_plans(c: dict) -> dict[str, object]:
    """Every dataset of the study, by folder name under data/. Both training sets hold the same
    scenes (seeds); the fine-tuning set new ones (the seeds after theirs), as new data would be."""
    tasks, sets = tasks_of(c["tasks"]), variant_sets(c)
    n = int(c["train_episodes_per_task"])
    plans = {f"train-{VARIANTS}": shown_in(train_plan(tasks, n, c), sets[TRAINING]),
             f"train-{DEFAULT}": shown_in(train_plan(tasks, n, c), sets[DEFAULT]),
             "finetune": replace(shown_in(train_plan(tasks, int(c["finetune_episodes_per_task"]), c),
                                          sets[HELD_OUT]), seed=int(c["seed"]) + n)}
    plans.update({f"val-{s}": shown_in(val_plan(tasks, c), sets[s]) for s in SETS})
    return plans


def plan_runs(study: Study) -> dict:
    """The study's units without running them: datasets, the three training runs, evaluations."""
    c = study.cfg
    sets, tasks = variant_sets(c), list(tasks_of(c["tasks"]))
    plans = dataset_plans(c)
    datasets = [{"unit": f"data-{name}", "path": str(study.out / "data" / name), "tasks": tasks,
                 "variants": list(p.variants()),
                 "episodes_per_task": p.split_counts()["train" if name.startswith(("train", "finetune"))
                                                       else "val"]} for name, p in plans.items()]
    train = [{"unit": f"train-{arm}", "run": arm, "role": arm, "base_config": c["base_config"],
              "launcher": c["launcher"], "pretrained_from": DEFAULT if arm == FINETUNED else None,
              "overrides": run_overrides(study, arm)} for arm in ARMS]
    scored = len(ARMS) * len(SETS)
    episodes = scored * len(tasks) * c["closed_loop_episodes"]
    load = {"tf_windows": scored * len(tasks) * c["tf_windows"],
            "closed_loop_frames": episodes * c["closed_loop_max_steps"]}
    steps = {"training (variants and default)": 2 * c["train_steps"], "fine-tuning": c["finetune_steps"]}
    return {"tasks": tasks, "variant_sets": {s: list(v) for s, v in sets.items()}, "arms": list(ARMS),
            "datasets": datasets, "train": train, "evaluation_load": load,
            "evaluations": [f"{k}-{arm}-on-{s}" for arm in ARMS for s in SETS for k in ("tf", "cl")],
            "training_steps": steps, "cpu_estimate": cpu_estimate(steps, load, scored)}


def run_overrides(study: Study, arm: str) -> list[str]:
    """An arm's training run: the two from random weights on their datasets for the same steps;
    the fine-tune from the ``default`` run's weights with the recipe."""
    c = study.cfg
    data = study.out / "data"
    if arm == FINETUNED:
        return (train_overrides(study, arm, data / "finetune", c["model_preset"], c["model_overrides"],
                                c["finetune_steps"])
                + recipe_overrides(c["finetune"], study.out / "runs" / DEFAULT))
    return train_overrides(study, arm, data / f"train-{arm}", c["model_preset"], c["model_overrides"],
                           c["train_steps"])


# -- the run ------------------------------------------------------------------------------------------
def run(study: Study) -> dict:
    from annobc.data import EpisodeStore

    c = study.cfg
    plan = plan_runs(study)
    tasks, plans = plan["tasks"], dataset_plans(c)
    data = {name: dataset_unit(study, f"data-{name}", study.out / "data" / name, p)
            for name, p in plans.items()}
    runs = {r["run"]: r for r in plan["train"]}
    trained = {arm: train_unit(study, arm, runs[arm]["overrides"]) for arm in ARMS}  # default first
    vals = {s: EpisodeStore(data[f"val-{s}"]["path"]) for s in SETS}
    bar = study.bar(len(ARMS) * len(SETS), "models scored", "score")
    scored = {}
    for arm in ARMS:
        for s in SETS:
            scored[(arm, s)] = score(study, vals[s], plans[f"val-{s}"], tasks, f"{arm}-on-{s}", trained[arm])
            bar.update(1)
    bar.close()
    figures, comparisons = analyse(study, scored, tasks, plan["variant_sets"])
    results = {
        "study": "variants", "scale": study.scale,
        "provenance": provenance(
            study, datasets={name: {"path": d["path"], "card_sha256": d["card_sha256"],
                                    "episodes": d["episodes"], "variants": list(plans[name].variants()),
                                    "base_seed": plans[name].seed} for name, d in data.items()},
            runs={arm: {"run_dir": t["run_dir"], "steps": t["step"], "params": t["params"],
                        "minutes": t["minutes"]} for arm, t in trained.items()},
            seeds={"data_base_seed": c["seed"], "train_seed": c["seed"], "bootstrap_seed": c["seed"],
                   "closed_loop_test_seeds": [scored[(VARIANTS, HELD_OUT)]["cl"]["seeds"][0],
                                              scored[(VARIANTS, HELD_OUT)]["cl"]["seeds"][-1]]},
            val_windows_per_task=c["tf_windows"], bootstrap_reps=c["bootstrap"]),
        "tasks": tasks, "variant_sets": plan["variant_sets"], "arms": list(ARMS), "sets": list(SETS),
        "optim": {arm: trained_optim(c, runs[arm]["overrides"], pretrained=arm == FINETUNED) for arm in ARMS},
        "figures": figures, "comparisons": comparisons,
    }
    results["verdicts"] = verdicts(results)
    lines = report(results, study.out)
    write_outputs(study.out, results, lines)
    return results


def score(study: Study, val, plan, tasks: list[str], name: str, tr: dict) -> dict:
    """A trained model's teacher-forced and closed-loop units on one evaluation set; its closed-loop
    seeds in the set's variants by the dataset rule (seed i in variant i mod k)."""
    variants = [plan.variant_of(s) for s in test_seeds(val, study.cfg["closed_loop_episodes"])]
    return {"train": tr,
            "tf": study.unit(f"tf-{name}", lambda: tf_unit(study, val, tasks, name, tr)),
            "cl": study.unit(f"cl-{name}", lambda: cl_unit(study, val, tasks, name, tr, variants))}


# -- analysis -------------------------------------------------------------------------------------------
def masked(rows: dict, W: np.ndarray, mask: np.ndarray) -> tuple[dict, np.ndarray]:
    """The rows (windows or episodes) under ``mask``, and their columns of the resamples."""
    return {k: v[mask] for k, v in rows.items()}, W[:, mask]


def episode_rows(unit: dict) -> dict:
    """A closed-loop unit's episodes in metric_samples' format (no categories: every row counts)."""
    e = unit["episodes"]
    return {"category": np.zeros(len(e["task"]), int), "task": np.array(e["task"]),
            "variant": np.array(e["variant"]), "seed": np.array(e["seed"]),
            "success": np.array(e["success"], bool)}


def estimate(rows: dict, W: np.ndarray, cats, flag: str) -> tuple[dict, np.ndarray]:
    """A figure with its count and 95% bootstrap interval, and its value in each resample."""
    v, n, boot = metric_samples(rows, W, cats, flag)
    return {"value": v, "n": n, "ci95": percentile_ci(boot) if v is not None else None}, boot


def breakdown(rows: dict, W: np.ndarray, flag: str, column: str, keys) -> tuple[dict, dict]:
    """A flag's figure per task (or per variant: ``column``), with the resamples of each."""
    out, boots = {}, {}
    for k in keys:
        out[k], boots[k] = estimate(*masked(rows, W, rows[column] == k), None, flag)
    return out, boots


def check_same(rows: dict, keys: dict, what: str, columns: tuple[str, ...]) -> None:
    first_key = next(iter(keys))
    for k in keys:
        for col in columns:
            if not np.array_equal(rows[k][col], rows[first_key][col]):
                raise StudyError(f"the {what} of {k[0]} on {k[1]} differ from those of "
                                 f"{first_key[0]} on {first_key[1]} ({col})")


def analyse(study: Study, scored: dict, tasks: list[str], sets: dict) -> tuple[dict, dict]:
    """Every arm's figures on every set, and the comparisons between them."""
    c = study.cfg
    reps = int(c["bootstrap"])
    tf_rows = {k: load_rows(study, v["tf"]) for k, v in scored.items()}
    cl_rows = {k: episode_rows(v["cl"]) for k, v in scored.items()}
    # Within a set, every arm is scored on the same windows: one set of resamples per set (paired
    # across arms; sets independent). Every set and arm has the same scenes closed loop: one set.
    W = {}
    for i, s in enumerate(SETS):
        check_same(tf_rows, {(a, s): None for a in ARMS}, "teacher-forced windows",
                   ("task", "variant", "category"))
        W[s] = bootstrap_weights(len(tf_rows[(ARMS[0], s)]["category"]), reps,
                                 np.random.default_rng([c["seed"], i]))
    check_same(cl_rows, dict.fromkeys(scored), "closed-loop scenes", ("task", "seed"))
    W_cl = bootstrap_weights(len(cl_rows[(ARMS[0], SETS[0])]["task"]), reps,
                             np.random.default_rng([c["seed"], len(SETS)]))
    figures, boots = {}, {}
    for (arm, s), unit in scored.items():
        rows, ep = tf_rows[(arm, s)], cl_rows[(arm, s)]
        tf = {}
        for name, (cats, flag) in TF_METRICS.items():
            tf[name], b = estimate(rows, W[s], cats, flag)
            if name == "accuracy":
                boots[(arm, s, "accuracy", "all")] = b
        tf_task, tf_task_boot = breakdown(rows, W[s], "hit", "task", tasks)
        tf_variant, _ = breakdown(rows, W[s], "hit", "variant", sets[s])
        _, b = estimate(ep, W_cl, None, "success")
        boots[(arm, s, "success", "all")] = b
        _, cl_task_boot = breakdown(ep, W_cl, "success", "task", tasks)
        for t in tasks:
            boots[(arm, s, "accuracy", t)], boots[(arm, s, "success", t)] = tf_task_boot[t], cl_task_boot[t]
        cl = unit["cl"]
        figures.setdefault(arm, {})[s] = {
            "run": unit["train"]["run"], "steps": unit["train"]["step"], "nll": unit["tf"]["nll"],
            "windows": len(rows["category"]), "episodes": len(ep["task"]),
            "teacher_forced": tf, "teacher_forced_by_task": tf_task, "teacher_forced_by_variant": tf_variant,
            "closed_loop": {k: cl[k] for k in ("success", "done_rate", "mean_length", "action_validity",
                                                "score")},
            "closed_loop_by_task": {t: successes(ep, ep["task"] == t) for t in tasks},
            "closed_loop_by_variant": {v: successes(ep, ep["variant"] == v) for v in sets[s]}}
    comparisons = {}
    for name, a, b, _ in COMPARISONS:
        comparisons[name] = {fig: {g: difference(value(figures, a, fig, g), value(figures, b, fig, g),
                                                 boots[(*a, fig, g)], boots[(*b, fig, g)])
                                   for g in ["all", *tasks]} for fig in FIGURES}
    return figures, comparisons


def successes(ep: dict, mask: np.ndarray) -> dict:
    return proportion(int(ep["success"][mask].sum()), int(mask.sum()))


def figure_of(figures: dict, key: tuple[str, str], fig: str, group: str) -> dict:
    """An arm's figure on a set (``key``: arm, set), pooled (``group`` "all") or of one task."""
    f = figures[key[0]][key[1]]
    if fig == "accuracy":
        return f["teacher_forced"]["accuracy"] if group == "all" else f["teacher_forced_by_task"][group]
    return f["closed_loop"]["success"] if group == "all" else f["closed_loop_by_task"][group]


def value(figures: dict, key: tuple[str, str], fig: str, group: str) -> float | None:
    m = figure_of(figures, key, fig, group)
    return m["value"] if fig == "accuracy" else m["rate"]


def difference(a: float | None, b: float | None, a_boot: np.ndarray, b_boot: np.ndarray) -> dict:
    """a minus b with the 95% interval of the resampled differences (paired where the resamples
    are: within a set for teacher-forced, by scene for closed loop); significant: excludes 0."""
    if a is None or b is None:
        return {"a": a, "b": b, "difference": None, "ci95": None, "significant": False}
    ci = percentile_ci(a_boot - b_boot)
    return {"a": a, "b": b, "difference": a - b, "ci95": ci,
            "significant": bool(ci is not None and (ci[0] > 0 or ci[1] < 0))}


def below(d: dict) -> bool:
    """Significantly below: the whole interval of the difference under 0."""
    return d["ci95"] is not None and d["ci95"][1] < 0


def robust(robustness: dict, vs_default: dict, fig: str) -> dict:
    """Works on unseen variants, for one figure and group: the held-out figure not significantly
    below the training-variant one, and above the default model's held-out figure."""
    if robustness["difference"] is None or vs_default["difference"] is None:
        return {"verdict": "not testable", "why": "no windows or episodes"}
    if not (robustness["a"] or robustness["b"] or vs_default["b"]):  # learnt nothing to lose
        return {"verdict": "not testable", "why": "all three figures are 0"}
    not_below, above = not below(robustness), vs_default["difference"] > 0
    return {"verdict": "holds" if not_below and above else "does not hold",
            "held_out_not_below_training": not_below, "above_default": above,
            "above_default_significantly": above and vs_default["significant"]}


def verdicts(results: dict) -> dict:
    comp = results["comparisons"]
    groups = ["all", *results["tasks"]]
    works = {fig: {g: robust(comp["robustness"][fig][g], comp["vs_default"][fig][g], fig) for g in groups}
             for fig in FIGURES}
    tf, cl = works["accuracy"]["all"]["verdict"], works["success"]["all"]["verdict"]
    overall = ("holds" if tf == "holds" and cl in ("holds", "not testable") else
               "not testable" if tf == "not testable" else "does not hold")
    recovery = {}
    for fig in FIGURES:
        loss, gain = comp["default_loss"][fig]["all"], comp["finetune_gain"][fig]["all"]
        lost = -loss["difference"] if loss["difference"] is not None else None
        won = gain["difference"]
        recovery[fig] = {
            "default_loss": lost, "default_loss_significant": loss["significant"] and (lost or 0) > 0,
            "gain": won, "gain_significant": gain["significant"] and (won or 0) > 0,
            # the share of the default model's loss that the fine-tune wins back (where it lost)
            "recovered_share": won / lost if lost and lost > 0 and won is not None else None,
            "reaches_variants": not below(comp["finetune_vs_variants"][fig]["all"])}
    cost = {fig: {name: {"difference": comp[name][fig]["all"]["difference"],
                         "significantly_lower": below(comp[name][fig]["all"])}
                  for name in ("diversity_cost", "forgetting")} for fig in FIGURES}
    return {"works_on_unseen_variants": overall, "by_figure": works, "finetune_recovery": recovery,
            "in_distribution": cost}


# -- report ---------------------------------------------------------------------------------------------
def cell(m: dict) -> str:
    return "-" if m["value"] is None else f"{pct(m['value'])} {ci_pct(m['ci95'])}"


def rate_cell(p: dict) -> str:
    return f"{pct(p['rate'])} ({p['k']}/{p['n']})"


def diff_cell(d: dict) -> str:
    return "-" if d["difference"] is None else f"{pct(d['difference'])} {ci_pct(d['ci95'])}"


def works_text(fig: str, d: dict, v: dict) -> str:
    label = "teacher-forced accuracy" if fig == "accuracy" else "closed-loop success"
    if v["verdict"] == "not testable":
        return f"{label}: not testable ({v['why']})"
    r = d["robustness"][fig]["all"]
    o = d["vs_default"][fig]["all"]
    return (f"{label}: `{VARIANTS}` {pct(r['a'])} on the held-out variants against {pct(r['b'])} on "
            f"its training variants (difference {diff_cell(r)}: "
            f"{'significantly below' if below(r) else 'not significantly below'}), against "
            f"`{DEFAULT}`'s {pct(o['b'])} on the held-out variants (difference {diff_cell(o)}: "
            f"{'above' if v['above_default'] else 'not above'}"
            f"{', significantly' if v['above_default_significantly'] else ''}): **{v['verdict']}**")


def recovery_text(fig: str, r: dict) -> str:
    label = "teacher-forced accuracy" if fig == "accuracy" else "closed-loop success"
    if r["default_loss"] is None or r["gain"] is None:
        return f"{label}: not testable"
    lost = (f"`{DEFAULT}` loses {pct(r['default_loss'])} from the default variant to the held-out "
            f"ones ({'significantly' if r['default_loss_significant'] else 'not significantly'})"
            if r["default_loss"] > 0 else f"`{DEFAULT}` loses nothing on the held-out variants")
    share = (f", {pct(r['recovered_share'])} of that loss" if r["recovered_share"] is not None else "")
    return (f"{label}: {lost}; the fine-tune gains {pct(r['gain'])} over it there "
            f"({'significantly' if r['gain_significant'] else 'not significantly'}){share}, and "
            f"{'reaches' if r['reaches_variants'] else 'stays significantly below'} `{VARIANTS}`")


def report(results: dict, out: Path) -> list[str]:
    prov, s = results["provenance"], results["provenance"]["settings"]
    sets, tasks, v = results["variant_sets"], results["tasks"], results["verdicts"]
    L = ["# Study: variants (GUI robustness)", "",
         f"Scale `{results['scale']}`. {code_text(prov)}. Tasks: {', '.join(tasks)}. "
         f"Training variants: {', '.join(sets[TRAINING])}; held out (never trained on by "
         f"`{VARIANTS}` or `{DEFAULT}`): {', '.join(sets[HELD_OUT])}.", "", "Arms:"]
    for arm in ARMS:
        o, r = results["optim"][arm], prov["runs"][arm]
        what = {VARIANTS: f"{s['train_episodes_per_task']} episodes per task in the training variants",
                DEFAULT: f"the same {s['train_episodes_per_task']} episodes per task (the same scenes) "
                         f"in the default variant only",
                FINETUNED: f"`{DEFAULT}` fine-tuned on {s['finetune_episodes_per_task']} new episodes "
                           f"per task in the held-out variants"}[arm]
        L.append(f"- `{arm}`: {what}; {r['steps']} steps, {lr_text(o)}, batch {o['batch']} "
                 f"({r['params']} parameters).")
    L += ["", f"Scored on three sets, each its own val dataset of the same scenes: `{HELD_OUT}` "
          f"({', '.join(sets[HELD_OUT])}), `{TRAINING}` ({', '.join(sets[TRAINING])}) and "
          f"`{DEFAULT}`. Teacher-forced: {s['tf_windows']} val windows per task, hit-tested in each "
          f"window's variant, the same for every arm (95% intervals from {prov['bootstrap_reps']} "
          f"bootstrap resamples of the windows; correlated within an episode, they are if anything too "
          f"narrow). Closed loop: {s['closed_loop_episodes']} test seeds per task, the same scenes in "
          f"every set (seed i in the set's variant i mod k; temperature {s['temperature']}, at most "
          f"{s['closed_loop_max_steps']} clicks; Wilson intervals; differences paired by scene). Every "
          f"figure below is in `results.json`.", "", "## Verdicts", "",
          f"**Works on unseen variants: {v['works_on_unseen_variants']}** (teacher-forced accuracy "
          f"must hold, and closed-loop success hold or be not testable).", ""]
    for fig in FIGURES:
        L.append(f"- {works_text(fig, results['comparisons'], v['by_figure'][fig]['all'])}.")
    L += ["", "What the fine-tune recovers:", ""]
    L += [f"- {recovery_text(fig, v['finetune_recovery'][fig])}." for fig in FIGURES]
    L += ["", "In-distribution (the default variant, against `default`):", ""]
    for fig in FIGURES:
        c = v["in_distribution"][fig]
        L.append(f"- {'teacher-forced accuracy' if fig == 'accuracy' else 'closed-loop success'}: "
                 f"`{VARIANTS}` minus `{DEFAULT}` {pct(c['diversity_cost']['difference'])}"
                 f"{' (significantly lower)' if c['diversity_cost']['significantly_lower'] else ''}, "
                 f"`{FINETUNED}` minus `{DEFAULT}` {pct(c['forgetting']['difference'])}"
                 f"{' (significantly lower)' if c['forgetting']['significantly_lower'] else ''}.")
    L += ["", "![held-out against training variants per task](variants_by_task.png)", ""]
    L += report_tables(results)
    plot(results, out / "variants_by_task.png")
    return L


def report_tables(results: dict) -> list[str]:
    F, tasks, sets = results["figures"], results["tasks"], results["variant_sets"]
    L = ["## Every arm on every set", ""]
    rows = [[arm, s, f["steps"], cell(f["teacher_forced"]["accuracy"]), cell(f["teacher_forced"]["validity"]),
             cell(f["teacher_forced"]["buttons"]), num(f["nll"]),
             f"{pct(f['closed_loop']['success']['rate'])} {ci_pct(f['closed_loop']['success']['ci95'])}",
             f"{f['closed_loop']['success']['k']}/{f['closed_loop']['success']['n']}",
             pct(f["closed_loop"]["done_rate"]), num(f["closed_loop"]["mean_length"], 1)]
            for arm in ARMS for s in SETS for f in [F[arm][s]]]
    L += table(["arm", "set", "steps", "TF accuracy", "validity", "buttons", "val NLL", "closed-loop success",
                "successes", "done", "length"], rows)
    L += ["", "Teacher-forced accuracy by click category (place: within 5 px on the canvas):", ""]
    L += table(["arm", "set", *CATEGORY_COLUMNS],
               [[arm, s, *[cell(F[arm][s]["teacher_forced"][k]) for k in CATEGORY_COLUMNS]]
                for arm in ARMS for s in SETS])
    L += ["", "## Differences", "", "Each a difference with its 95% interval (teacher-forced: "
          "bootstrap over windows, paired within a set; closed loop: bootstrap over scenes, paired).", ""]
    comp = results["comparisons"]
    L += table(["comparison", "what", "TF accuracy", "significant", "closed-loop success", "significant"],
               [[name, what, diff_cell(comp[name]["accuracy"]["all"]),
                 "yes" if comp[name]["accuracy"]["all"]["significant"] else "no",
                 diff_cell(comp[name]["success"]["all"]),
                 "yes" if comp[name]["success"]["all"]["significant"] else "no"]
                for name, _, _, what in COMPARISONS])
    L += ["", "## Per task", "", f"Works on unseen variants, per task (`{VARIANTS}`: held-out minus "
          f"training variants; and minus `{DEFAULT}` on the held-out variants):", ""]
    works = results["verdicts"]["by_figure"]
    L += table(["task", "TF: held-out - training", "TF: - default", "TF verdict",
                "CL: held-out - training", "CL: - default", "CL verdict"],
               [[t, *[x for fig in FIGURES for x in (diff_cell(comp["robustness"][fig][t]),
                                                     diff_cell(comp["vs_default"][fig][t]),
                                                     f"**{works[fig][t]['verdict']}**")]] for t in tasks])
    L += ["", "Teacher-forced accuracy per task and set:", ""]
    L += table(["task", *[f"{arm} on {s}" for arm in ARMS for s in SETS]],
               [[t, *[pct(F[arm][s]["teacher_forced_by_task"][t]["value"]) for arm in ARMS for s in SETS]]
                for t in tasks])
    L += ["", "Closed-loop success per task and set (successes of episodes):", ""]
    L += table(["task", *[f"{arm} on {s}" for arm in ARMS for s in SETS]],
               [[t, *[rate_cell(F[arm][s]["closed_loop_by_task"][t]) for arm in ARMS for s in SETS]]
                for t in tasks])
    L += ["", "## Per variant", "", "Pooled over tasks: teacher-forced accuracy and closed-loop success "
          "(successes of episodes) of each arm in each variant.", ""]
    L += table(["variant", "set", *[f"{arm} TF" for arm in ARMS], *[f"{arm} CL" for arm in ARMS]],
               [[name, s, *[cell(F[arm][s]["teacher_forced_by_variant"][name]) for arm in ARMS],
                 *[rate_cell(F[arm][s]["closed_loop_by_variant"][name]) for arm in ARMS]]
                for s in SETS for name in sets[s]])
    return L + [""]


def plot(results: dict, path: Path) -> None:
    """Per task and pooled: each arm's held-out figure (solid) beside its training-variant figure
    (light), teacher-forced accuracy above, closed-loop success below, with 95% intervals."""
    plt = pyplot()
    tasks, F = results["tasks"], results["figures"]
    groups = ["all", *tasks]
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 1.1 * len(groups)), 5.0), sharex=True)
    width = 0.8 / (2 * len(ARMS))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, figure in zip(axes, FIGURES):
        for i, arm in enumerate(ARMS):
            for j, s in enumerate((TRAINING, HELD_OUT)):
                y = np.array([value(F, (arm, s), figure, g) for g in groups], float)  # None: NaN
                ci = np.array([figure_of(F, (arm, s), figure, g)["ci95"] or [0.0, 0.0] for g in groups],
                              float)
                err = np.clip(np.stack([y - ci[:, 0], ci[:, 1] - y]), 0, None)
                x = np.arange(len(groups)) - 0.4 + width * (2 * i + j + 0.5)
                ax.bar(x, np.nan_to_num(y), width, yerr=np.nan_to_num(err), color=colors[i % len(colors)],
                       alpha=1.0 if s == HELD_OUT else 0.35, capsize=1.5, error_kw={"lw": 0.6},
                       label=f"{arm}, {s}")
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("teacher-forced accuracy" if figure == "accuracy" else "closed-loop success",
                      fontsize=7)
        ax.tick_params(labelsize=6)
    axes[1].set_xticks(np.arange(len(groups)), [g.replace("_", " ") for g in groups], rotation=30,
                       ha="right", fontsize=6)
    axes[0].legend(fontsize=5, ncol=len(ARMS))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
