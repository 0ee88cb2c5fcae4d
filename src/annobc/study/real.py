"""``annobc study real``: your own data through the same loop. A model pretrained on the nine
synthetic tasks, fine-tuned on a few imported instances of real-format data, against the same model
trained from scratch on them; scored on held-out imported instances by the task's own measure of
the annotation (for neuron tracing: the traced skeleton against the ground truth).

The input (``source``: ``neuron``, ``tracks`` or ``pose``) is a lab's export in its real format:
a TIFF stack with SWC skeletons, a Cell Tracking Challenge folder, or DeepLabCut labeled-data
folders. None ships with annobc, so the study first writes one (:mod:`annobc.study.real_input`,
deterministic from ``seed``: the same files, byte for byte), then treats it as a lab's own:
imported by :mod:`annobc.importers` (``annobc import``'s code path) into an import folder whose
card holds every source file's sha256 and splits the instances train / val / test.

Units, in order (each resumable; a kill is continued by the same command):

1. ``input-SOURCE``: the real-format files; ``import-SOURCE``: the import folder.
2. ``data-pretrain``, ``train-pretrain``: the pretraining run on the nine synthetic tasks (as the
   emergence study trains its model; ``pretrained_run`` names an existing run to start from
   instead, e.g. that study's, whose weights are then recorded as ``pretrained-external``).
3. Per N of ``instances`` (nested: a smaller N's instances are the first of a larger one's, in an
   order shuffled by ``seed`` from the import's train split): ``subset-nN``, a view of the import
   whose train split is those N instances (the same instance files); ``data-train-nN``,
   ``episodes_per_instance`` annotator episodes on each of them (``annobc generate`` over the
   view; frames materialised). ``data-heldout``: ``val_episodes`` annotator episodes on the val
   instances and as many on the test instances, never trained on.
4. The arms at every N, each trained for the same ``finetune_steps`` on the same episodes: the
   fine-tuning recipes of ``finetune`` (from the pretraining run's weights; ``published``: LR 3e-5,
   backbone at 0.01x; ``full``: the pretraining run's optimizer) and ``scratch`` (random weights,
   the pretraining run's optimizer). The pretrained model itself is scored too (``zero-shot``).
5. Per model: ``tf-*``, teacher-forced on the val instances' episodes (the same windows for every
   model; accuracy and per-category figures with paired bootstrap intervals over windows), and
   ``cl-*``, closed loop on the test instances (``closed_loop_episodes`` test seeds cycling through
   them): success with its 95% Wilson interval and the task's score of the finished annotation
   (neuron: node accuracy x coverage of the traced skeleton; tracks: the mean of track accuracy
   and division F1; pose: PCK), with its parts. ``annotator-test``: the annotator's own episodes on
   the same test seeds, as a reference.

The task score's intervals come from a bootstrap over test *instances* (an instance's episodes
are resampled together, since they share their data), one set of resamples for every model, so
fine-tuned minus scratch is paired. Per recipe and N, that difference **helps** when its interval
lies above 0, **hurts** when below, else no significant difference; the verdict: pretraining
helps where some recipe helps at every N and none hurts at any; hurts where every recipe hurts at
every N; no significant difference where nothing is significant; mixed otherwise. Beside it,
transfer's comparisons: teacher-forced accuracy (paired bootstrap) and closed-loop success
(disjoint Wilson intervals), and the instances scratch needs to reach the fine-tuned task score.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from annobc.study.common import (code_text, Study, StudyError, bootstrap_weights, ci_pct, dataset_unit, num,
                                 pct, percentile_ci, proportion, provenance, pyplot,
                                 cpu_estimate, screen_and_variant, table, tasks_of, test_seeds,
                                 train_overrides, train_unit, write_outputs)
from annobc.study.real_input import SOURCES, TASK_OF, import_input, subset_view, write_input
from annobc.study.scaling import CATEGORY_COLUMNS
from annobc.study.transfer import (SCRATCH, ZERO_SHOT, analyse_task, arms, cell, gain,
                                   gain_cells, lr_text, pretrain_plan, recipe_overrides, run_name)
from annobc.study.transfer import score as transfer_score

# The parts of each task's score, read from the task's state at the end of an episode.
SCORE_PARTS = {
    "neuron_tracking": {
        "node_accuracy": lambda t: (t.n_nodes() - t.n_wrong()) / t.n_nodes() if t.n_nodes() else 0.0,
        "coverage": lambda t: t.n_nodes() / t.n_slices},
    "cell_lineage_tracking": {"track_accuracy": lambda t: t.track_accuracy(),
                              "division_f1": lambda t: t.division_f1()},
    "animal_limb_tracking": {},
}
SCORE_MEANING = {
    "neuron_tracking": "the traced skeleton against the ground truth: node accuracy (nodes inside "
                       "the neurite's cross-section) x coverage (slices with a node)",
    "cell_lineage_tracking": "the mean of track accuracy (frames whose point is on the followed "
                             "nucleus) and division F1",
    "animal_limb_tracking": "PCK: the share of the keypoints placed within the task's tolerance",
}
ANNOTATOR = "annotator"


# -- the plan ---------------------------------------------------------------------------------------
def source_of(c: dict) -> str:
    if c["source"] not in SOURCES:
        raise StudyError(f"source must be one of {', '.join(SOURCES)}, got {c['source']!r}")
    return c["source"]


def input_spec(c: dict) -> dict:
    """The source's input size: instances (about; the importer decides) and their length."""
    spec = c["input"].get(c["source"])
    if not isinstance(spec, dict) or not {"instances", "length"} <= set(spec):
        raise StudyError(f"input.{c['source']} must give instances and length, got {spec!r}")
    return {"instances": int(spec["instances"]), "length": int(spec["length"])}


def instance_grid(c: dict) -> list[int]:
    grid = sorted({int(n) for n in c["instances"]})
    if not grid or grid[0] < 1:
        raise StudyError(f"instances needs at least one count >= 1, got {c['instances']}")
    if int(c["val_episodes"]) < 2 or int(c["episodes_per_instance"]) < 1:
        raise StudyError("need val_episodes >= 2 and episodes_per_instance >= 1")
    return grid


def expected_train_instances(c: dict) -> int:
    """The train split the import will have (80% of the instances, at least one val and one test
    from three on), for the plan's check of the grid; the run checks the real one."""
    from annobc.data import Plan
    from annobc.importers.common import SPLIT_FRACTIONS

    n = input_spec(c)["instances"]
    if c["source"] == "neuron":
        n = 3 * math.ceil(n / 3)
    elif c["source"] == "pose":
        n = 5 * max(1, math.ceil(n / 5))
    return Plan(tasks=(), episodes_per_task=n, split_fractions=SPLIT_FRACTIONS).split_counts()["train"]


def folders(study: Study) -> dict[str, Path]:
    s = study.cfg["source"]
    return {"input": study.out / "input" / s, "import": study.out / "import" / s,
            "pretrain": study.out / "data" / "pretrain", "heldout": study.out / "data" / f"{s}-heldout"}


def view_dir(study: Study, n: int) -> Path:
    return study.out / "import" / f"{study.cfg['source']}-n{n}"


def train_dir(study: Study, n: int) -> Path:
    return study.out / "data" / f"{study.cfg['source']}-train-n{n}"


def plan_runs(study: Study) -> dict:
    """The study's units without running them: input, import, datasets, runs, evaluations."""
    c = study.cfg
    source, grid, names = source_of(c), instance_grid(c), arms(c)
    task, spec, f = TASK_OF[source], input_spec(c), folders(study)
    expected = expected_train_instances(c)
    if grid[-1] > expected:
        raise StudyError(f"instances {grid} needs {grid[-1]} train instances; input.{source} makes "
                         f"about {expected}")
    pool = tasks_of(c["tasks"])
    datasets = [{"unit": f"input-{source}", "path": str(f["input"]), **spec},
                {"unit": f"import-{source}", "path": str(f["import"]), "task": task,
                 "train_instances_expected": expected}]
    train = []
    if c["pretrained_run"]:
        pre = {"run": "external", "run_dir": str(c["pretrained_run"])}
    else:
        pre = {"run": "pretrain", "run_dir": str(study.out / "runs" / "pretrain")}
        datasets.append({"unit": "data-pretrain", "path": str(f["pretrain"]), "tasks": list(pool),
                         "episodes_per_task": c["pretrain_episodes_per_task"]})
        train.append({"unit": "train-pretrain", "run": "pretrain", "role": "pretraining",
                      "tasks": list(pool), "base_config": c["base_config"], "launcher": c["launcher"],
                      "overrides": train_overrides(study, "pretrain", f["pretrain"], c["model_preset"],
                                                   c["model_overrides"], c["pretrain_steps"])})
    recipes = {r["name"]: r for r in c["finetune"]}
    evaluations = [f"tf-{source}-{ZERO_SHOT}", f"cl-{source}-{ZERO_SHOT}", "annotator-test"]
    for n in grid:
        datasets.append({"unit": f"data-train-n{n}", "path": str(train_dir(study, n)), "task": task,
                         "instances": n, "episodes": n * int(c["episodes_per_instance"]),
                         "view": str(view_dir(study, n))})
        for arm in names:
            run = run_name(source, arm, n)
            extra = recipe_overrides(recipes.get(arm), Path(pre["run_dir"]) if arm != SCRATCH else None)
            train.append({"unit": f"train-{run}", "run": run, "role": arm, "task": task, "instances": n,
                          "pretrained_from": pre["run"] if arm != SCRATCH else None,
                          "base_config": c["base_config"], "launcher": c["launcher"],
                          "overrides": train_overrides(study, run, train_dir(study, n), c["model_preset"],
                                                       c["model_overrides"], c["finetune_steps"]) + extra})
            evaluations += [f"tf-{run}", f"cl-{run}"]
    datasets.append({"unit": "data-heldout", "path": str(f["heldout"]), "task": task,
                     "val_episodes": c["val_episodes"], "test_episodes": c["val_episodes"]})
    scored = 1 + len(grid) * len(names)  # zero-shot + the grid
    load = {"tf_windows": scored * c["tf_windows"],
            "closed_loop_frames": scored * c["closed_loop_episodes"] * c["closed_loop_max_steps"]}
    steps = {"pretraining": 0 if c["pretrained_run"] else c["pretrain_steps"],
             "fine-tuning and scratch": len(grid) * len(names) * c["finetune_steps"]}
    return {"source": source, "task": task, "instances": grid, "arms": names, "pool": list(pool),
            "pretraining": pre, "datasets": datasets, "train": train, "evaluation_load": load,
            "evaluations": evaluations, "training_steps": steps,
            "cpu_estimate": cpu_estimate(steps, load, scored)}


# -- the run ------------------------------------------------------------------------------------------
def train_plan(task: str, view: Path, n: int, c: dict):
    """``episodes_per_instance`` train episodes on each of the view's ``n`` train instances (train
    seed s plays instance s mod n; the one val and one test episode every plan of 3 or more
    episodes has are not trained on)."""
    from annobc.data import Plan

    return Plan(tasks=(task,), episodes_per_task=n * int(c["episodes_per_instance"]) + 2, seed=c["seed"],
                split_fractions=(1.0, 0.0, 0.0), screen=tuple(c["screen"]),
                params={task: {"instance": str(view)}})


def heldout_plan(task: str, imported: Path, c: dict):
    """``val_episodes`` episodes on the val instances and as many on the test instances."""
    from annobc.data import Plan

    v = int(c["val_episodes"])
    return Plan(tasks=(task,), episodes_per_task=2 * v, seed=c["seed"], split_fractions=(0.0, 0.5, 0.5),
                screen=tuple(c["screen"]), params={task: {"instance": str(imported)}})


def input_unit(study: Study, source: str, folder: Path) -> dict:
    spec = input_spec(study.cfg)
    return study.unit(f"input-{source}", lambda: write_input(source, folder, spec["instances"],
                                                              spec["length"], study.cfg["seed"]))


def import_unit(study: Study, source: str, written: dict, out: Path) -> dict:
    import hashlib

    def fn():
        card = import_input(source, written, out, input_spec(study.cfg)["length"], study.cfg["split_seed"])
        return {"path": str(out), "task": card["task"], "kind": card["kind"],
                "import_json_sha256": hashlib.sha256((out / "import.json").read_bytes()).hexdigest(),
                "splits": card["splits"], "instances": len(card["instances"]),
                "sources": [{"role": s["role"], "path": s["path"], "sha256": s["sha256"]}
                            for s in card["sources"]],
                "options": card["options"], "notes": card["notes"], "annobc_version": card["annobc_version"]}
    return study.unit(f"import-{source}", fn)


def subset_order(imported: dict, seed: int) -> list[str]:
    """The import's train instances in a seeded order: N takes the first N (nested)."""
    train = sorted(imported["splits"]["train"])
    return [train[i] for i in np.random.default_rng([int(seed), 0x5EB]).permutation(len(train))]


def external_unit(study: Study, path: str) -> dict:
    """An existing run to start from instead of pretraining here: its checkpoint, step, parameter
    count and the sha256 of its weights."""
    import hashlib

    def fn():
        from annobc.learning.checkpoint import load_policy, resolve_checkpoint

        ck = resolve_checkpoint(path)
        model, state = load_policy(path, "cpu")
        return {"run": "external", "run_dir": str(Path(path).resolve()), "checkpoint": str(ck),
                "step": int(state["step"]), "params": model.num_params(), "minutes": None,
                "weights_sha256": hashlib.sha256((ck / "model.safetensors").read_bytes()).hexdigest()}
    return study.unit("pretrained-external", fn)


def run(study: Study) -> dict:
    from annobc.data import EpisodeStore
    from annobc.train.config import load_config

    c = study.cfg
    plan = plan_runs(study)
    source, task, grid, names = plan["source"], plan["task"], plan["instances"], plan["arms"]
    f = folders(study)
    runs = {r["run"]: r for r in plan["train"]}
    # -- the real-format input, imported -----------------------------------------------------------
    written = input_unit(study, source, f["input"])
    imported = import_unit(study, source, written, f["import"])
    order = subset_order(imported, c["seed"])
    if grid[-1] > len(order):
        raise StudyError(f"instances {grid} needs {grid[-1]} train instances; the import has "
                         f"{len(order)} (input.{source}.instances makes more)")
    # -- pretraining: on the nine synthetic tasks, or an existing run ------------------------------
    if c["pretrained_run"]:
        pre = {"train": external_unit(study, c["pretrained_run"]), "data": None}
    else:
        pre = {"data": dataset_unit(study, "data-pretrain", f["pretrain"], pretrain_plan(plan["pool"], c)),
               "train": train_unit(study, "pretrain", runs["pretrain"]["overrides"])}
    # -- the imported episodes: N train instances each, the held-out instances ----------------------
    data, views = {}, {}
    for n in grid:
        views[n] = study.unit(f"subset-n{n}", lambda n=n: {
            "path": str(view_dir(study, n)), "train": order[:n],
            "card_train": subset_view(f["import"], view_dir(study, n), order[:n])["splits"]["train"]})
        data[n] = dataset_unit(study, f"data-train-n{n}", train_dir(study, n),
                               train_plan(task, view_dir(study, n), n, c))
    data["heldout"] = dataset_unit(study, "data-heldout", f["heldout"], heldout_plan(task, f["import"], c))
    held = EpisodeStore(data["heldout"]["path"])
    # -- every model scored on the held-out instances -----------------------------------------------
    bar = study.bar(1 + len(grid) * len(names), "models scored", "model")
    scored = {ZERO_SHOT: {0: score(study, held, task, f"{source}-{ZERO_SHOT}", pre["train"])}}
    bar.update(1)
    for n in grid:
        for arm in names:
            r = runs[run_name(source, arm, n)]
            scored.setdefault(arm, {})[n] = score(study, held, task, r["run"],
                                                  train_unit(study, r["run"], r["overrides"]))
            bar.update(1)
    bar.close()
    seeds = scored[ZERO_SHOT][0]["cl"]["seeds"]
    annot = study.unit("annotator-test", lambda: annotator_unit(held, task, seeds))
    # -- analysis -------------------------------------------------------------------------------------
    optim = {}
    for arm in names:
        o = load_config(c["base_config"], runs[run_name(source, arm, grid[0])]["overrides"]).optim
        optim[arm] = {"init": "random" if arm == SCRATCH else "pretrained", "lr": o.lr,
                      "backbone_lr_mult": o.backbone_lr_mult, "backbone_lr": o.lr * o.backbone_lr_mult,
                      "steps": o.max_steps, "warmup_steps": o.warmup_steps, "batch": o.batch_size}
    tf = analyse_task(study, task, scored, grid, names)
    cl = analyse_closed_loop(study, task, scored, grid, names, annot)
    p = pre["train"]
    results = {
        "study": "real", "scale": study.scale, "source": source, "task": task,
        "provenance": provenance(
            study, pool=plan["pool"],
            input={"synthesised": True, "writer": f"annobc.study.real_input.write_{source}",
                   "seed": c["seed"], **input_spec(c), "describe": written["describe"],
                   "folder": written["folder"], "files": written["files"]},
            imported=imported,
            pretraining={"run": p["run"], "run_dir": p["run_dir"], "steps": p["step"], "params": p["params"],
                         "external": bool(c["pretrained_run"]),
                         "weights_sha256": p.get("weights_sha256"),
                         "dataset": pre["data"]["path"] if pre["data"] else None,
                         "card_sha256": pre["data"]["card_sha256"] if pre["data"] else None},
            subsets={str(n): views[n]["train"] for n in grid},
            datasets={**{f"train-n{n}": {"path": data[n]["path"], "card_sha256": data[n]["card_sha256"],
                                         "episodes": data[n]["episodes"]} for n in grid},
                      "heldout": {"path": data["heldout"]["path"],
                                  "card_sha256": data["heldout"]["card_sha256"]}},
            seeds={"input_seed": c["seed"], "split_seed": c["split_seed"], "subset_seed": c["seed"],
                   "data_base_seed": c["seed"], "train_seed": c["seed"], "bootstrap_seed": c["seed"],
                   "closed_loop_test_seeds": [seeds[0], seeds[-1]] if seeds else []},
            finetune_steps=c["finetune_steps"], episodes_per_instance=c["episodes_per_instance"],
            val_windows=c["tf_windows"], bootstrap_reps=c["bootstrap"]),
        "instances": grid, "arms": names, "recipes": [r["name"] for r in c["finetune"]], "optim": optim,
        "splits": {k: len(v) for k, v in imported["splits"].items()},
        "score_meaning": SCORE_MEANING[task], "teacher_forced": tf, "closed_loop": cl,
    }
    results["verdict"] = verdict(cl, [r["name"] for r in c["finetune"]], grid)
    lines = report(results, study.out)
    write_outputs(study.out, results, lines)
    return results


# -- units ----------------------------------------------------------------------------------------------
def score(study: Study, held, task: str, name: str, tr: dict) -> dict:
    """A model's teacher-forced (val instances) and closed-loop (test instances) units: transfer's,
    with this study's closed loop (the task's score parts)."""
    return transfer_score(study, held, task, name, tr, closed_loop=cl_unit)


def score_parts(task: str, t) -> dict:
    return {k: float(fn(t)) for k, fn in SCORE_PARTS.get(task, {}).items()}


def instance_of(task: str, params: dict, seed: int) -> str:
    from annobc.tasks.instances import instance_file

    return instance_file(params["instance"], seed, task).stem


def cl_unit(study: Study, held, task: str, name: str, tr: dict) -> dict:
    """Closed loop on the test instances, each episode's figures kept (for the instance bootstrap)."""
    from annobc.eval.closed_loop import closed_loop, closed_loop_metrics
    from annobc.learning.checkpoint import load_policy

    c = study.cfg
    model, state = load_policy(tr["run_dir"], c["device"])
    screen, theme, variant = screen_and_variant(held)
    seeds = test_seeds(held, c["closed_loop_episodes"])
    params = {t: v["params"] for t, v in held.card.get("tasks", {}).items()}
    bar = study.bar(len(seeds), f"closed loop {name}", "ep")
    rollouts = closed_loop(model, [task], seeds, c["temperature"], c["closed_loop_max_steps"], screen,
                           theme, c["device"], name=name, batch_size=c["closed_loop_batch"],
                           progress=bar, params=params, ui_variant=variant)
    bar.close()
    recs = [r.record for r in rollouts[task]]
    m = closed_loop_metrics(recs)
    episodes = [{"seed": int(r.record.seed), "instance": instance_of(task, params[task], r.record.seed),
                 "success": bool(r.record.success), "score": float(r.record.score),
                 "length": len(r.record.steps), "done": bool(r.record.done),
                 **score_parts(task, r.session.task)} for r in rollouts[task]]
    return {"run": tr["run"], "step": int(state["step"]), "seeds": seeds,
            "temperature": c["temperature"], "max_steps": c["closed_loop_max_steps"],
            "success": proportion(sum(r.success for r in recs), len(recs)), "episodes": episodes,
            **{k: m[k] for k in ("done_rate", "mean_length", "action_validity", "score")}}


def annotator_unit(held, task: str, seeds: list[int]) -> dict:
    """The annotator's episodes of the held-out dataset on the closed-loop test seeds (replayed to
    read the score's parts from the task's final state)."""
    from annobc.tasks import Session

    want = set(seeds)
    params = held.card["tasks"][task]["params"]
    episodes = []
    for eid in held.episode_ids("test", [task]):
        rec = held.record(eid)
        if rec.seed not in want:
            continue
        s = Session(task, rec.seed, rec.params, tuple(rec.screen), rec.theme, rec.ui_variant)
        for x, y in rec.clicks:
            s.step(x, y)
        episodes.append({"seed": int(rec.seed), "instance": instance_of(task, params, rec.seed),
                         "success": bool(rec.success), "score": float(rec.score), "length": len(rec),
                         "done": bool(rec.done), **score_parts(task, s.task)})
    if not episodes:
        raise StudyError("the held-out dataset has no test episode on the closed-loop seeds")
    return {"persona": held.card.get("persona", "default"), "episodes": episodes,
            "success": proportion(sum(e["success"] for e in episodes), len(episodes))}


# -- analysis -------------------------------------------------------------------------------------------
def episode_figures(eps: list[dict], W: np.ndarray, index: dict[str, int], parts: list[str]) -> dict:
    """Mean task score, its parts and success over episodes, each with the 95% interval of the
    instance bootstrap (W: resampling counts per instance; an instance's episodes go together)."""
    w = W[:, [index[e["instance"]] for e in eps]]
    out = {}
    for k in ["score", *parts]:
        x = np.array([e[k] for e in eps], float)
        out[k] = {"value": float(x.mean()), "n": len(x), "ci95": percentile_ci((w @ x) / w.sum(1))}
    out["_boot_score"] = (w @ np.array([e["score"] for e in eps], float)) / w.sum(1)
    return out


def analyse_closed_loop(study: Study, task: str, scored: dict, grid: list[int], names: list[str],
                        annot: dict) -> dict:
    """Closed-loop figures of every model and the annotator on the test instances; fine-tuned
    against scratch on the task score (paired instance bootstrap), success (Wilson) and the
    instances scratch needs to reach the fine-tuned score."""
    c = study.cfg
    cells = [(ZERO_SHOT, 0)] + [(a, n) for n in grid for a in names]
    first = scored[ZERO_SHOT][0]["cl"]
    for a, n in cells:
        if scored[a][n]["cl"]["seeds"] != first["seeds"]:
            raise StudyError(f"the closed-loop seeds of {a} at N={n} differ from the zero-shot model's")
    instances = sorted({e["instance"] for e in first["episodes"]})
    index = {name: i for i, name in enumerate(instances)}
    # One set of instance resamples for every model (and the annotator): differences are paired.
    W = bootstrap_weights(len(instances), int(c["bootstrap"]), np.random.default_rng([c["seed"], 7]))
    parts = list(SCORE_PARTS.get(task, {}))
    figures, boot = {}, {}
    for a, n in cells:
        s = scored[a][n]
        fig = episode_figures(s["cl"]["episodes"], W, index, parts)
        boot[(a, n)] = fig.pop("_boot_score")
        figures.setdefault(a, {})[str(n)] = {
            "instances": n, "steps": s["train"]["step"], "run": s["train"]["run"], **fig,
            "success": s["cl"]["success"], "done_rate": s["cl"]["done_rate"],
            "mean_length": s["cl"]["mean_length"]}
    ann = episode_figures(annot["episodes"], W, index, parts)
    ann.pop("_boot_score")
    ann_eps = annot["episodes"]
    annotator = {**ann, "success": annot["success"],
                 "done_rate": sum(e["done"] for e in ann_eps) / len(ann_eps),
                 "mean_length": sum(e["length"] for e in ann_eps) / len(ann_eps)}
    recipes = [a for a in names if a != SCRATCH]
    vs, eff = {}, {}
    scratch_scores = [figures[SCRATCH][str(n)]["score"]["value"] for n in grid]
    for r in recipes:
        vs[r], eff[r] = {}, {}
        for n in grid:
            ft, sc = figures[r][str(n)], figures[SCRATCH][str(n)]
            ci = percentile_ci(boot[(r, n)] - boot[(SCRATCH, n)])
            p, q = ft["success"], sc["success"]
            vs[r][str(n)] = {
                "score_difference": ft["score"]["value"] - sc["score"]["value"], "score_difference_ci95": ci,
                "score_verdict": ("helps" if ci and ci[0] > 0 else "hurts" if ci and ci[1] < 0
                                  else "no significant difference"),
                "success_difference": p["rate"] - q["rate"],
                "success_significant": bool(p["ci95"][0] > q["ci95"][1] or p["ci95"][1] < q["ci95"][0])}
            eff[r][str(n)] = gain(ft["score"]["value"], n, scratch_scores, grid)
    return {"test_instances": instances, "episodes": len(first["episodes"]),
            "seeds": [first["seeds"][0], first["seeds"][-1]] if first["seeds"] else [],
            "parts": parts, "zero_shot": figures[ZERO_SHOT]["0"],
            "arms": {a: figures[a] for a in names}, "annotator": annotator, "vs_scratch": vs,
            "efficiency": eff}


def verdict(cl: dict, recipes: list[str], grid: list[int]) -> dict:
    """Does pretraining help on the held-out instances' task score? (See the module docstring.)"""
    per = {}
    for r in recipes:
        v = [cl["vs_scratch"][r][str(n)]["score_verdict"] for n in grid]
        per[r] = {"helps": v.count("helps"), "hurts": v.count("hurts"), "points": len(v)}
    helps_all = any(p["helps"] == p["points"] for p in per.values())
    hurts_any = any(p["hurts"] for p in per.values())
    if helps_all and not hurts_any:
        overall = "pretraining helps"
    elif all(p["hurts"] == p["points"] for p in per.values()):
        overall = "pretraining hurts"
    elif not any(p["helps"] or p["hurts"] for p in per.values()):
        overall = "no significant difference"
    else:
        overall = "mixed"
    return {"overall": overall, "by_recipe": per}


# -- report ---------------------------------------------------------------------------------------------
def fig_cell(m: dict) -> str:
    return f"{num(m['value'])} [{num(m['ci95'][0])}, {num(m['ci95'][1])}]" if m["ci95"] else num(m["value"])


def report(results: dict, out: Path) -> list[str]:
    prov = results["provenance"]
    s, inp, imp, pre = prov["settings"], prov["input"], prov["imported"], prov["pretraining"]
    grid, names = results["instances"], results["arms"]
    cl, tf = results["closed_loop"], results["teacher_forced"]
    task, parts = results["task"], cl["parts"]
    L = [f"# Study: your own data (`real`, source `{results['source']}`, task {task})", "",
         f"Scale `{results['scale']}`. {code_text(prov)}.", "",
         "## Input", "",
         f"**Synthesised, not real data**: no real dataset is available where this ran, so the study "
         f"wrote one in the real format ({inp['writer']}, seed {inp['seed']}): {inp['describe']}; "
         f"{len(inp['files'])} files in `{inp['folder']}`. It was then imported with annobc's importer "
         f"(`annobc import {imp['kind']}`'s code path) into `{imp['path']}` (import card sha256 "
         f"`{imp['import_json_sha256'][:16]}...`, annobc {imp['annobc_version']}); its source files "
         f"and their sha256 (all {len(imp['sources'])} are in `results.json`):"]
    for src in imp["sources"][:6]:
        L.append(f"- {src['role']}: `{Path(src['path']).name}` `{src['sha256'][:16]}...`")
    if len(imp["sources"]) > 6:
        L.append(f"- ... and {len(imp['sources']) - 6} more")
    L += [""] + table(["split", "instances"], [[k, v] for k, v in results["splits"].items()])
    pre_text = (f"the existing run `{pre['run_dir']}` (weights sha256 "
                f"`{(pre['weights_sha256'] or '')[:16]}...`)"
                if pre["external"] else
                f"`{pre['run']}`, trained here on the synthetic tasks {', '.join(prov['pool'])} "
                f"({s['pretrain_episodes_per_task']} episodes per task, card sha256 "
                f"`{(pre['card_sha256'] or '')[:16]}...`)")
    L += ["", "## Design", "",
          f"Pretrained model: {pre_text}, {pre['steps']} steps, {pre['params']} parameters. Per N "
          f"train instances ({', '.join(map(str, grid))}; nested, from the import's train split), "
          f"{prov['episodes_per_instance']} annotator episodes on each, and these arms, **every one "
          f"trained for the same {prov['finetune_steps']} steps** on the same episodes (seed "
          f"{prov['seeds']['train_seed']}):"]
    for arm in names:
        o = results["optim"][arm]
        init = "random weights" if o["init"] == "random" else "the pretrained weights"
        L.append(f"- `{arm}`: {init}, {lr_text(o)}, warm-up {o['warmup_steps']} steps + cosine, "
                 f"batch {o['batch']}.")
    L += ["", f"`{ZERO_SHOT}` (N = 0) is the pretrained model itself. Closed loop on the "
          f"{len(cl['test_instances'])} test instances ({cl['episodes']} episodes, seeds cycling "
          f"through them; temperature {s['temperature']}, at most {s['closed_loop_max_steps']} clicks): "
          f"success with its 95% Wilson interval (over episodes, which share instances: if anything "
          f"too narrow) and the task score, {results['score_meaning']}, with a 95% interval from "
          f"{prov['bootstrap_reps']} bootstrap resamples of the test instances (paired across models). "
          f"Teacher-forced on the val instances' annotator episodes ({tf['windows']} windows, the same "
          f"for every model). The `{ANNOTATOR}` row is the annotator (the demonstrations' source) on "
          f"the same test seeds. Every figure below is in `results.json`.", "", "## Verdict", ""]
    v = results["verdict"]
    L.append(f"**{v['overall'].capitalize()}** at this scale (the task score on held-out instances):")
    for r, p in v["by_recipe"].items():
        L.append(f"- `{r}` against `{SCRATCH}`: significantly higher at {p['helps']} of {p['points']} N, "
                 f"significantly lower at {p['hurts']}.")
    png = f"real_{results['source']}.png"
    L += ["", f"![task score, success and teacher-forced accuracy against N]({png})", "",
          "## Closed loop on the held-out test instances", ""]
    models = [(ZERO_SHOT, cl["zero_shot"])] + [(a, cl["arms"][a][str(n)]) for n in grid for a in names]
    rows = []
    for arm, f in models:
        su = f["success"]
        rows.append([arm, f["instances"], f["steps"], fig_cell(f["score"]), *[fig_cell(f[k]) for k in parts],
                     f"{pct(su['rate'])} {ci_pct(su['ci95'])}", f"{su['k']}/{su['n']}", pct(f["done_rate"]),
                     num(f["mean_length"], 1)])
    a = cl["annotator"]
    rows.append([ANNOTATOR, "-", "-", fig_cell(a["score"]), *[fig_cell(a[k]) for k in parts],
                 f"{pct(a['success']['rate'])} {ci_pct(a['success']['ci95'])}",
                 f"{a['success']['k']}/{a['success']['n']}", pct(a["done_rate"]), num(a["mean_length"], 1)])
    L += table(["model", "N", "steps", "task score", *[k.replace("_", " ") for k in parts], "success",
                "successes", "done", "length"], rows)
    L += ["", f"Fine-tuned minus `{SCRATCH}` at the same N (task score: paired instance-bootstrap interval; "
          "success: significant where the Wilson intervals are disjoint; teacher-forced accuracy: paired "
          "bootstrap over windows):", ""]
    rows = []
    for r, points in cl["vs_scratch"].items():
        for n in grid:
            p, t = points[str(n)], tf["vs_scratch"][r][str(n)]
            rows.append([r, n, f"{num(p['score_difference'])} [{num(p['score_difference_ci95'][0])}, "
                               f"{num(p['score_difference_ci95'][1])}]" if p["score_difference_ci95"]
                         else num(p["score_difference"]), f"**{p['score_verdict']}**",
                         pct(p["success_difference"]), "yes" if p["success_significant"] else "no",
                         f"{pct(t['accuracy_difference'])} {ci_pct(t['accuracy_difference_ci95'])}",
                         "yes" if t["accuracy_significant"] else "no"])
    L += table(["recipe", "N", "score difference", "verdict", "success difference", "significant",
                "TF accuracy difference", "significant"], rows)
    L += ["", f"Data efficiency on the task score: the train instances `{SCRATCH}` needs to reach the "
          "fine-tuned model's score at N (interpolated linearly in the score at log N between grid "
          "points) and that over N; `<=`: scratch reaches it at the smallest N already; not reached: "
          "nowhere on the grid (the gain is then above the largest N over N).", ""]
    rows = []
    for r, e in cl["efficiency"].items():
        for n in grid:
            g = e[str(n)]
            rows.append([r, n, num(g["target"]), *gain_cells(g)])
    L += table(["recipe", "N", "fine-tuned score", "scratch needs (instances)", "gain"], rows)
    L += ["", "## Teacher-forced on the val instances", "",
          "Accuracy, validity and button accuracy with 95% bootstrap intervals; per click category "
          "(place: within 5 px on the canvas; buttons: the same button):", ""]
    tmodels = [(ZERO_SHOT, tf["zero_shot"])] + [(a, tf["arms"][a][str(n)]) for n in grid for a in names]
    L += table(["model", "N", "TF accuracy", "validity", "buttons", "val NLL", *CATEGORY_COLUMNS],
               [[arm, f["episodes"], *[cell(f["teacher_forced"][k]) for k in ("accuracy", "validity", "buttons")],
                 num(f["nll"]), *[pct(f["teacher_forced"][k]["value"]) for k in CATEGORY_COLUMNS]]
                for arm, f in tmodels])
    L.append("")
    plot(results, out / png)
    return L


def plot(results: dict, path: Path) -> None:
    """Three panels against N: the task score, closed-loop success and teacher-forced accuracy,
    per arm with 95% intervals; the zero-shot model dashed, the annotator dotted."""
    plt = pyplot()
    from matplotlib.ticker import NullFormatter

    grid, cl, tf = results["instances"], results["closed_loop"], results["teacher_forced"]

    def score(f):
        return f["score"]["value"], f["score"]["ci95"]

    def success(f):
        return f["success"]["rate"], f["success"]["ci95"]

    def accuracy(f):
        m = f["teacher_forced"]["accuracy"]
        return (np.nan, None) if m["value"] is None else (m["value"], m["ci95"])

    panels = [("task score (closed loop)", cl, score, True), ("closed-loop success", cl, success, True),
              ("teacher-forced accuracy", tf, accuracy, False)]
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 2.8), squeeze=False)
    for ax, (title, src, get, with_annotator) in zip(axes[0], panels):
        for i, arm in enumerate(results["arms"]):
            vals = [get(src["arms"][arm][str(n)]) for n in grid]
            y = np.array([v for v, _ in vals], float)
            lo_hi = [ci or [v, v] for v, ci in vals]
            err = np.array([[v - c[0] for (v, _), c in zip(vals, lo_hi)],
                            [c[1] - v for (v, _), c in zip(vals, lo_hi)]])
            ax.errorbar(np.array(grid) * (1 + 0.05 * (i - 1)), y, yerr=np.clip(err, 0, None), marker="o",
                        ms=3, lw=1, capsize=2, label=arm)
        ax.axhline(get(src["zero_shot"])[0], color="grey", lw=0.8, ls="--", label=ZERO_SHOT)
        if with_annotator:
            ax.axhline(get(src["annotator"])[0], color="black", lw=0.8, ls=":", label=ANNOTATOR)
        ax.set_xscale("log")
        ax.set_xticks(grid, [str(n) for n in grid])
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_ylim(0, 1.02)
        ax.set_title(title, fontsize=7)
        ax.set_xlabel("train instances (imported)", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=5)
    fig.suptitle(f"{results['source']}: {results['task'].replace('_', ' ')}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
