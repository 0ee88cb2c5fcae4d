"""``annobc study scaling``: finding 2 of the study. Larger models are more data-efficient; at
similar placement accuracy they are worse at decisions.

A grid of model sizes by dataset sizes (train episodes per task, nested: a smaller dataset's
episodes are the first of a larger one's), every cell trained for the same number of steps and
scored teacher-forced on one shared val set. Then:

- per cell, the val click NLL (nats) and the accuracies by click category;
- per model, the episodes needed to reach a threshold val NLL (interpolated in log-log between
  grid points; by default the loosest NLL every model reaches on the grid);
- claim 1, point by point: at each dataset size, the larger of two neighbouring models has the
  lower val NLL; and it needs fewer episodes to reach the threshold;
- claim 2, point by point: where two neighbouring models' placement@5 is within
  ``placement_tolerance`` of each other, the larger has the lower decision (select) accuracy.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from annobc.study.common import (code_text, Study, StudyError, ci_pct, dataset_unit, num, pct,
                                 proportion, provenance, pyplot, table, tasks_of, train_overrides,
                                 train_unit, write_outputs)

CATEGORY_COLUMNS = ("navigate", "place", "view", "select", "undo", "done")


def run_name(model: str, episodes: int) -> str:
    return f"{model}-n{episodes}"


def plan_runs(study: Study) -> dict:
    c = study.cfg
    if len(c["models"]) < 2 or len(c["episodes"]) < 2:
        raise StudyError("the scaling grid needs at least 2 models and 2 dataset sizes")
    names = [m["name"] for m in c["models"]]
    if len(set(names)) != len(names):
        raise StudyError(f"model names must differ, got {names}")
    tasks = list(tasks_of(c["tasks"]))
    episodes = sorted(int(n) for n in c["episodes"])
    datasets = [{"unit": f"data-train-n{n}", "path": str(study.out / "data" / f"train-n{n}"),
                 "tasks": tasks, "train_episodes_per_task": n} for n in episodes]
    datasets.append({"unit": "data-val", "path": str(study.out / "data" / "val"), "tasks": tasks,
                     "val_episodes_per_task": c["val_episodes_per_task"]})
    train = []
    for m in c["models"]:
        for n in episodes:
            run = run_name(m["name"], n)
            train.append({"unit": f"train-{run}", "run": run, "model": m["name"], "episodes": n,
                          "base_config": c["base_config"], "launcher": c["launcher"],
                          "overrides": train_overrides(study, run, study.out / "data" / f"train-n{n}",
                                                       m["preset"], m["overrides"], c["train_steps"])})
    return {"datasets": datasets, "train": train, "episodes": episodes,
            "evaluation_load": {"tf_windows": len(train) * len(tasks) * c["tf_windows"]},
            "evaluations": [f"tf-{r['run']}" for r in train]}


def train_plan(tasks, n: int, c: dict):
    """Train episodes ``n`` per task (the one val and one test episode per task each plan needs
    are not used: the grid is scored on the shared val set)."""
    from annobc.data import Plan, parse_task_params

    return Plan(tasks=tuple(tasks), episodes_per_task=n + 2, seed=c["seed"],
                split_fractions=(1.0, 0.0, 0.0), screen=tuple(c["screen"]),
                params=parse_task_params(c["params"]))


def val_plan(tasks, c: dict):
    """``val_episodes_per_task`` val episodes per task, the same seeds as every training dataset's
    val range (never trained on)."""
    from annobc.data import Plan, parse_task_params

    v = int(c["val_episodes_per_task"])
    return Plan(tasks=tuple(tasks), episodes_per_task=2 * v, seed=c["seed"],
                split_fractions=(0.5, 0.5, 0.0), screen=tuple(c["screen"]),
                params=parse_task_params(c["params"]))


def run(study: Study) -> dict:
    from annobc.data import EpisodeStore

    c = study.cfg
    tasks = tasks_of(c["tasks"])
    plan = plan_runs(study)
    episodes = plan["episodes"]
    data_units = {}
    for n in episodes:
        data_units[n] = dataset_unit(study, f"data-train-n{n}", study.out / "data" / f"train-n{n}",
                                     train_plan(tasks, n, c))
    val_unit = dataset_unit(study, "data-val", study.out / "data" / "val", val_plan(tasks, c))
    val = EpisodeStore(val_unit["path"])
    cells: dict[str, dict[int, dict]] = {}
    params: dict[str, int] = {}
    for r in plan["train"]:
        tr = train_unit(study, r["run"], r["overrides"])
        params[r["model"]] = tr["params"]
        cells.setdefault(r["model"], {})[r["episodes"]] = study.unit(
            f"tf-{r['run']}", lambda tr=tr: tf_unit(study, val, tr, tasks))
    models = sorted(cells, key=lambda m: params[m])  # smallest first
    grid = {m: {str(n): cell_figures(cells[m][n]) for n in episodes} for m in models}
    thr = threshold(grid, models, episodes, c["threshold"])
    efficiency = {m: episodes_to_threshold([grid[m][str(n)]["nll"] for n in episodes], episodes,
                                           thr["value"]) for m in models}
    claims = {"larger_more_data_efficient": claim_efficiency(grid, models, episodes, efficiency),
              "similar_placement_worse_decisions": claim_decisions(grid, models, episodes,
                                                                   c["placement_tolerance"])}
    results = {
        "study": "scaling", "scale": study.scale,
        "provenance": provenance(
            study, datasets={str(n): {"path": data_units[n]["path"],
                                      "card_sha256": data_units[n]["card_sha256"]} for n in episodes},
            val_dataset={"path": val_unit["path"], "card_sha256": val_unit["card_sha256"]},
            seeds={"data_base_seed": c["seed"], "train_seed": c["seed"]},
            train_steps=c["train_steps"], val_windows_per_task=c["tf_windows"],
            checkpoint_steps={m: {str(n): cells[m][n]["step"] for n in episodes} for m in models}),
        "models": [{"name": m, "params": params[m],
                    "preset": next(x["preset"] for x in c["models"] if x["name"] == m)} for m in models],
        "episodes": episodes, "grid": grid, "threshold": thr, "episodes_to_threshold": efficiency,
        "claims": claims,
    }
    lines = report(results, study.out)
    write_outputs(study.out, results, lines)
    return results


def tf_unit(study: Study, val, tr: dict, tasks) -> dict:
    from annobc.learning.checkpoint import load_policy
    from annobc.learning.loss import LossConfig
    from annobc.learning.teacher_forced import teacher_forced

    c = study.cfg
    model, state = load_policy(tr["run_dir"], c["device"])
    if tuple(val.card["screen"]) != (model.cfg.screen_w, model.cfg.screen_h):
        raise StudyError(f"the val set's screen {val.card['screen']} is not the model's")
    m = teacher_forced(model, val, "val", max_windows=c["tf_windows"], batch_size=c["tf_batch"],
                       device=c["device"], tasks=list(tasks),
                       loss=LossConfig(**state["train_config"]["loss"]))
    return {"run": tr["run"], "step": int(state["step"]), "params": tr["params"], "teacher_forced": m}


def cell_figures(unit: dict) -> dict:
    m = unit["teacher_forced"]
    cnt = m.get("count_by_category", {})
    out = {k: m.get(k) for k in ("n", "nll", "accuracy", "validity", "button_accuracy",
                                 "decision_accuracy", "placement@2", "placement@5")}
    out["accuracy_by_category"] = m.get("accuracy_by_category", {})
    out["count_by_category"] = cnt
    dec, place = m.get("decision_accuracy"), m.get("placement@5")
    out["decisions"] = proportion(int(round(dec * cnt["select"])), cnt["select"]) if dec is not None else None
    out["placement5"] = proportion(int(round(place * cnt["place"])), cnt["place"]) if place is not None else None
    out["by_task"] = {t: {k: v.get(k) for k in ("n", "accuracy", "validity", "button_accuracy",
                                                 "decision_accuracy", "placement@5")}
                      for t, v in m.get("by_task", {}).items()}
    return out


def threshold(grid: dict, models: list[str], episodes: list[int], setting) -> dict:
    if setting == "auto":
        best = {m: min(grid[m][str(n)]["nll"] for n in episodes) for m in models}
        return {"value": max(best.values()), "rule": "auto: the highest of the models' best val NLL "
                "on the grid (the loosest NLL every model reaches)"}
    return {"value": float(setting), "rule": "set"}


def episodes_to_threshold(nll: list[float], episodes: list[int], thr: float) -> dict:
    """The episodes at which a model's val NLL first falls to ``thr``: linear in log(episodes)
    against log(NLL) between the two grid points around the crossing."""
    for i, v in enumerate(nll):
        if v <= thr + 1e-12:
            if i == 0:
                return {"episodes": float(episodes[0]), "censored": True, "reached": True}
            a, b = math.log(nll[i - 1]), math.log(max(v, 1e-12))
            t = (a - math.log(thr)) / (a - b) if a != b else 1.0
            le = math.log(episodes[i - 1]) + min(max(t, 0.0), 1.0) * (math.log(episodes[i]) - math.log(episodes[i - 1]))
            return {"episodes": math.exp(le), "censored": False, "reached": True}
    return {"episodes": None, "censored": False, "reached": False}


def claim_efficiency(grid, models, episodes, efficiency) -> dict:
    points = []
    for small, large in zip(models, models[1:]):
        for n in episodes:
            a, b = grid[small][str(n)]["nll"], grid[large][str(n)]["nll"]
            points.append({"episodes": n, "smaller": small, "larger": large, "nll_smaller": a,
                           "nll_larger": b, "verdict": "holds" if b < a else "does not hold"})
    pairs = []
    for small, large in zip(models, models[1:]):
        es, el = efficiency[small]["episodes"], efficiency[large]["episodes"]
        es_, el_ = (math.inf if es is None else es), (math.inf if el is None else el)
        pairs.append({"smaller": small, "larger": large, "episodes_smaller": es, "episodes_larger": el,
                      "verdict": "not testable" if es is None and el is None else
                      ("holds" if el_ < es_ else "does not hold")})
    k = sum(p["verdict"] == "holds" for p in points)
    return {"points": points, "points_holding": k, "points_total": len(points),
            "verdict": "holds" if k == len(points) else "does not hold",
            "threshold_pairs": pairs,
            "threshold_verdict": "holds" if all(p["verdict"] == "holds" for p in pairs) else
            ("not testable" if all(p["verdict"] == "not testable" for p in pairs) else "does not hold")}


def claim_decisions(grid, models, episodes, tolerance: float) -> dict:
    points = []
    for small, large in zip(models, models[1:]):
        for n in episodes:
            a, b = grid[small][str(n)], grid[large][str(n)]
            pa, pb = a["placement@5"], b["placement@5"]
            da, db = a["decision_accuracy"], b["decision_accuracy"]
            p = {"episodes": n, "smaller": small, "larger": large, "placement_smaller": pa,
                 "placement_larger": pb, "placement_gap": None if pa is None or pb is None else pb - pa,
                 "decisions_smaller": a["decisions"], "decisions_larger": b["decisions"],
                 "significant": None}
            if pa is None or pb is None or da is None or db is None:
                p["verdict"] = "not testable"
            elif abs(pb - pa) > tolerance:
                p["verdict"] = "not comparable"
            else:
                p["verdict"] = "holds" if db < da else "does not hold"
                ca, cb = a["decisions"]["ci95"], b["decisions"]["ci95"]
                p["significant"] = bool(cb[1] < ca[0] or cb[0] > ca[1])
            points.append(p)
    comparable = [p for p in points if p["verdict"] in ("holds", "does not hold")]
    k = sum(p["verdict"] == "holds" for p in comparable)
    verdict = ("not testable" if not comparable else
               "holds" if k == len(comparable) else "does not hold")
    return {"tolerance": tolerance, "points": points, "points_holding": k,
            "points_comparable": len(comparable), "verdict": verdict}


# -- report ---------------------------------------------------------------------------------------------
def report(results: dict, out: Path) -> list[str]:
    prov = results["provenance"]
    models = [m["name"] for m in results["models"]]
    params = {m["name"]: m["params"] for m in results["models"]}
    episodes = results["episodes"]
    c1 = results["claims"]["larger_more_data_efficient"]
    c2 = results["claims"]["similar_placement_worse_decisions"]
    L = ["# Study: scaling (finding 2)", "",
         f"Scale `{results['scale']}`. {code_text(prov)}. A grid of "
         f"{len(models)} models by {len(episodes)} dataset sizes (train episodes per task: "
         f"{', '.join(map(str, episodes))}; nested); **every cell is trained for the same "
         f"{prov['train_steps']} steps** (seed {prov['seeds']['train_seed']}), so small datasets are "
         f"seen for more epochs. Every cell is scored teacher-forced on one shared val set "
         f"(`{prov['val_dataset']['path']}`, card sha256 `{prov['val_dataset']['card_sha256'][:16]}...`, "
         f"{prov['val_windows_per_task']} windows per task). Every figure below is in `results.json`.",
         "", "## Verdicts", "",
         f"- Larger models are more data-efficient (lower val NLL at the same data), point by point: "
         f"**{c1['verdict']}** ({c1['points_holding']} of {c1['points_total']} points); fewer episodes "
         f"to the threshold NLL: **{c1['threshold_verdict']}**.",
         f"- At similar placement, larger models are worse at decisions: **{c2['verdict']}** "
         f"({c2['points_holding']} of {c2['points_comparable']} comparable points; placement@5 within "
         f"{pct(c2['tolerance'])} counts as similar).", "",
         "## The grid", "",
         "Val NLL: the click's negative log-likelihood (nats); accuracy by category: navigate, view, "
         "select, UNDO, DONE targets on the same button, place targets within 5 px; decisions: select "
         "accuracy with its 95% Wilson interval.", ""]
    rows = []
    for m in models:
        for n in episodes:
            g = results["grid"][m][str(n)]
            abc = g["accuracy_by_category"]
            dec = g["decisions"]
            rows.append([m, params[m], n, num(g["nll"]), pct(g["accuracy"]), pct(g["validity"]),
                         pct(g["button_accuracy"]),
                         f"{pct(dec['rate'])} {ci_pct(dec['ci95'])}" if dec else "-",
                         pct(g["placement@2"]), pct(g["placement@5"]),
                         *[pct(abc.get(k)) for k in CATEGORY_COLUMNS]])
    L += table(["model", "params", "episodes", "val NLL", "accuracy", "validity", "buttons",
                "decisions", "placement@2", "placement@5", *CATEGORY_COLUMNS], rows)
    thr = results["threshold"]
    L += ["", "![val NLL against episodes](val_nll.png)", "",
          "![placement and decisions against episodes](placement_decisions.png)", "",
          "## Data efficiency", "",
          f"Episodes per task needed to reach val NLL {num(thr['value'])} ({thr['rule']}); "
          "interpolated linearly in log-log between grid points; `<=` where the smallest dataset "
          "already reaches it.", ""]
    rows = []
    for m in models:
        e = results["episodes_to_threshold"][m]
        rows.append([m, params[m], ("<=" if e["censored"] else "") + num(e["episodes"], 1)
                     if e["reached"] else "not reached"])
    L += table(["model", "params", "episodes to threshold"], rows)
    L += ["", "## Claim 1: larger models are more data-efficient", "",
          "Point by point: at each dataset size, the larger of two neighbouring models has the lower "
          "val NLL.", ""]
    L += table(["episodes", "smaller", "larger", "NLL smaller", "NLL larger", "verdict"],
               [[p["episodes"], p["smaller"], p["larger"], num(p["nll_smaller"]), num(p["nll_larger"]),
                 f"**{p['verdict']}**"] for p in c1["points"]])
    L += ["", "Fewer episodes to the threshold NLL:", ""]
    L += table(["smaller", "larger", "episodes smaller", "episodes larger", "verdict"],
               [[p["smaller"], p["larger"], num(p["episodes_smaller"], 1), num(p["episodes_larger"], 1),
                 f"**{p['verdict']}**"] for p in c1["threshold_pairs"]])
    L += ["", "## Claim 2: at similar placement, larger models are worse at decisions", "",
          f"Point by point: where two neighbouring models' placement@5 differ by at most "
          f"{pct(c2['tolerance'])}, the larger has the lower decision (select) accuracy; "
          "significant: the Wilson intervals are disjoint; not comparable: placement differs more.", ""]
    rows = []
    for p in c2["points"]:
        ds, dl = p["decisions_smaller"], p["decisions_larger"]
        rows.append([p["episodes"], p["smaller"], p["larger"], pct(p["placement_smaller"]),
                     pct(p["placement_larger"]),
                     f"{pct(ds['rate'])} {ci_pct(ds['ci95'])}" if ds else "-",
                     f"{pct(dl['rate'])} {ci_pct(dl['ci95'])}" if dl else "-",
                     "-" if p["significant"] is None else ("yes" if p["significant"] else "no"),
                     f"**{p['verdict']}**"])
    L += table(["episodes", "smaller", "larger", "placement@5 smaller", "placement@5 larger",
                "decisions smaller", "decisions larger", "significant", "verdict"], rows)
    plot_nll(results, out / "val_nll.png")
    plot_accuracy(results, out / "placement_decisions.png")
    return L


def plot_nll(results: dict, path: Path) -> None:
    plt = pyplot()
    from matplotlib.ticker import FormatStrFormatter, NullFormatter

    fig, ax = plt.subplots(figsize=(4, 3))
    eps = results["episodes"]
    for m in results["models"]:
        ax.plot(eps, [results["grid"][m["name"]][str(n)]["nll"] for n in eps], marker="o", ms=3,
                label=f"{m['name']} ({m['params'] / 1e6:.2f}M)")
    ax.axhline(results["threshold"]["value"], color="grey", lw=0.8, ls="--", label="threshold")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(eps, [str(n) for n in eps])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.3g"))
    ax.set_xlabel("train episodes per task", fontsize=7)
    ax.set_ylabel("val NLL (nats)", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_accuracy(results: dict, path: Path) -> None:
    plt = pyplot()
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), sharey=True)
    eps = results["episodes"]
    for ax, key, title in ((axes[0], "placement@5", "placement@5"),
                           (axes[1], "decision_accuracy", "decisions (select)")):
        for m in results["models"]:
            vals = [results["grid"][m["name"]][str(n)][key] for n in eps]
            ax.plot(eps, [np.nan if v is None else v for v in vals], marker="o", ms=3, label=m["name"])
        ax.set_xscale("log")
        ax.set_xticks(eps, [str(n) for n in eps])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=7)
        ax.set_xlabel("train episodes per task", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)

