"""``annobc eval``: teacher-forced and closed-loop evaluation of a checkpoint, with a report.

Writes to the output folder: results.json (with provenance), report.md, plots (PNG) and GIFs of a
few closed-loop episodes per task.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from annobc.data.generate import code_version
from annobc.data.store import EpisodeStore
from annobc.eval.closed_loop import closed_loop, closed_loop_metrics, mistake_recovery
from annobc.learning.teacher_forced import teacher_forced
from annobc.gui.gif import save_gif
from annobc.learning.checkpoint import load_policy

COMPARE_KEYS = ("success_rate", "done_rate", "mean_length", "mistake_rate", "correction_rate")


def evaluate(checkpoint: str, tasks: list[str] | str = "all", episodes: int = 100,
             temperature: float = 0.4, max_steps: int = 300, out: str | None = None,
             data: str | None = None, gifs_per_task: int = 2, tf_windows: int = 1024,
             recovery_seeds: int = 20, device: str = "cpu", progress: bool = True,
             ui_variant: str | None = None) -> dict:
    """``ui_variant``: the GUI variant of the closed-loop and recovery episodes (None: the
    dataset's, where its card names one variant, else "default")."""
    model, state = load_policy(checkpoint, device)
    data = data or state["train_config"]["data"]["path"]
    store = EpisodeStore(data)
    tasks = store.tasks if tasks in ("all", ["all"]) else list(tasks)
    missing = sorted(set(tasks) - set(store.tasks))
    if missing:
        raise ValueError(f"tasks {missing} are not in the dataset {data} (it has {store.tasks})")
    out_dir = Path(out or Path(checkpoint).resolve().parent / "eval")
    if (Path(checkpoint) / "checkpoints").exists():
        out_dir = Path(out or Path(checkpoint) / "eval")
    out_dir.mkdir(parents=True, exist_ok=True)
    screen = tuple(store.card["screen"])
    theme = store.card.get("theme")  # None: the variant's own
    if ui_variant is None:
        from annobc.gui import resolve_variants

        names = resolve_variants(store.card.get("ui_variant") or "default")
        ui_variant = names[0] if len(names) == 1 else "default"
    test_start = store.card["seed_ranges"]["test"][0] if store.card["seed_ranges"].get("test") \
        else 20_000_000
    seeds = list(range(test_start, test_start + episodes))

    from tqdm import tqdm

    # -- teacher-forced on the val split ------------------------------------------------------------
    tf = teacher_forced(model, store, "val", max_windows=tf_windows, device=device, tasks=tasks)
    # -- closed loop on fixed test seeds --------------------------------------------------------------
    bar = tqdm(total=len(tasks) * episodes, desc="closed loop", unit="ep", file=sys.stderr,
               disable=not progress)
    params = {t: v["params"] for t, v in store.card.get("tasks", {}).items()}
    rollouts = closed_loop(model, tasks, seeds, temperature, max_steps, screen, theme, device,
                           gifs_per_task, name=Path(checkpoint).name, progress=bar, params=params,
                           ui_variant=ui_variant)
    bar.close()
    per_task = {}
    for t in tasks:
        recs = [r.record for r in rollouts[t]]
        m = closed_loop_metrics(recs)
        data_stats = store.card.get("stats", {}).get(t, {})
        m["training_data"] = {k: data_stats.get(k) for k in COMPARE_KEYS}
        m["training_data"]["action_mix"] = data_stats.get("action_mix")
        per_task[t] = m
        for i, r in enumerate(rollouts[t][:gifs_per_task]):
            save_gif(r.frames, r.clicks, out_dir / f"{t}-{i}.gif", scale=2, max_frames=60)
    # -- mistake recovery ---------------------------------------------------------------------------
    recovery = {t: mistake_recovery(model, t, list(range(test_start, test_start + recovery_seeds)),
                                    screen, theme, device=device, params=params.get(t),
                                    ui_variant=ui_variant) for t in tasks}
    ck_state_step = state["step"]
    results = {
        "provenance": {
            "code_version": code_version(), "checkpoint": str(Path(checkpoint).resolve()),
            "checkpoint_step": ck_state_step, "model_config": state["model_config"],
            "dataset": str(Path(data).resolve()),
            "dataset_card_sha256": hashlib.sha256((Path(data) / "dataset.json").read_bytes()).hexdigest(),
            "closed_loop_seeds": [seeds[0], seeds[-1]], "temperature": temperature,
            "max_steps": max_steps, "recovery_seeds": [test_start, test_start + recovery_seeds - 1],
            "ui_variant": ui_variant,
        },
        "teacher_forced": tf,
        "closed_loop": per_task,
        "mistake_recovery": recovery,
    }
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=_np) + "\n")
    write_report(results, out_dir, run_dir=_run_dir(checkpoint))
    results["out_dir"] = str(out_dir)
    return results


def _np(o):
    if isinstance(o, (np.generic,)):
        return o.item()
    raise TypeError(type(o))


def _run_dir(checkpoint: str) -> Path | None:
    p = Path(checkpoint).resolve()
    for cand in (p, p.parent, p.parent.parent):
        if (cand / "metrics.jsonl").exists():
            return cand
    return None


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def results_table(results: dict) -> str:
    """One row per task: closed-loop figures against the training data's, and teacher-forced
    placement, buttons and the rare clicks (DONE, UNDO)."""
    tf = results["teacher_forced"]["by_task"]
    lines = ["| task | closed-loop success (95% CI) | above chance | score | done | length | "
             "validity | mistakes | corrections | TF placement@5 | TF buttons | TF DONE | TF UNDO |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t, m in results["closed_loop"].items():
        d = m["training_data"]
        tt = tf.get(t, {})
        by_cat = tt.get("accuracy_by_category", {})
        lo, hi = m["success_ci95"]
        lines.append(
            f"| {t} | {_pct(m['success_rate'])} ({100 * lo:.0f}-{100 * hi:.0f}) | "
            f"{'yes' if m['above_chance'] else 'no'} (chance {100 * m['chance_level']:.0f}%) | "
            f"{m['score']:.3f} | "
            f"{_pct(m['done_rate'])} | {m['mean_length']:.0f} (data {d['mean_length'] or 0:.0f}) | "
            f"{_pct(m['action_validity'])} | {_pct(m['mistake_rate'])} (data {_pct(d['mistake_rate'])}) | "
            f"{_pct(m['correction_rate'])} (data {_pct(d['correction_rate'])}) | "
            f"{_pct(tt.get('placement@5'))} | {_pct(tt.get('button_accuracy'))} | "
            f"{_pct(by_cat.get('done'))} | {_pct(by_cat.get('undo'))} |")
    return "\n".join(lines)


def write_report(results: dict, out_dir: Path, run_dir: Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prov = results["provenance"]
    tf = results["teacher_forced"]
    parts = [
        "# annobc evaluation report", "",
        f"Checkpoint `{prov['checkpoint']}` (step {prov['checkpoint_step']}), code "
        f"{prov['code_version']}, dataset card sha256 `{prov['dataset_card_sha256'][:16]}...`.",
        f"Closed loop: test seeds {prov['closed_loop_seeds'][0]}..{prov['closed_loop_seeds'][1]}, "
        f"temperature {prov['temperature']}, at most {prov['max_steps']} clicks.", "",
        "## Per task", "",
        "Closed-loop figures are the policy's own episodes; `data` is the training data's figure for "
        "the same task. TF = teacher-forced on the val split.", "",
        results_table(results), "",
        "## Teacher-forced (val split, all tasks)", "",
        "| metric | value |", "|---|---|",
    ]
    for k in ("n", "accuracy", "validity", "placement@2", "placement@5", "button_accuracy",
              "decision_accuracy", "nll"):
        if k in tf:
            v = tf[k]
            parts.append(f"| {k} | {v if k == 'n' else (f'{v:.3f}' if k == 'nll' else _pct(v))} |")
    parts += ["", "Accuracy by click category: " + ", ".join(
        f"{c} {_pct(v)} (n={tf['count_by_category'][c]})" for c, v in tf.get("accuracy_by_category", {}).items()),
        "", "## Mistake recovery", "",
        "Episodes start from the annotator's state right after its first mistake (its own history "
        "as context); the policy then acts for up to `horizon` clicks.", "",
        "| task | states | policy removed the mistake | policy pressed UNDO | annotator removed it "
        "| expert removed it |",
        "|---|---|---|---|---|---|"]
    for t, r in results["mistake_recovery"].items():
        parts.append(f"| {t} | {r['states']} | {_pct(r['policy_removed_mistake'])} | "
                     f"{_pct(r['policy_pressed_undo'])} | {_pct(r['annotator_removed_mistake'])} | "
                     f"{_pct(r['expert_removed_mistake'])} |")
    # plots
    tasks = list(results["closed_loop"])
    fig, ax = plt.subplots(figsize=(8, 3.5))
    sr = [results["closed_loop"][t]["success_rate"] for t in tasks]
    ci = np.array([results["closed_loop"][t]["success_ci95"] for t in tasks])
    ax.bar(range(len(tasks)), sr, yerr=[np.array(sr) - ci[:, 0], ci[:, 1] - np.array(sr)], capsize=3)
    ax.set_xticks(range(len(tasks)), [t.replace("_", "\n", 1) for t in tasks], fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("closed-loop success")
    fig.tight_layout()
    fig.savefig(out_dir / "closed_loop_success.png", dpi=100)
    plt.close(fig)
    parts += ["", "![closed-loop success](closed_loop_success.png)"]
    if run_dir is not None:
        curves = plot_training_curves(run_dir / "metrics.jsonl", out_dir / "training_curves.png")
        if curves:
            parts += ["", "## Training", "", "![training curves](training_curves.png)"]
    gifs = sorted(p.name for p in out_dir.glob("*.gif"))
    if gifs:
        parts += ["", "## Episodes", ""] + [f"![{g}]({g})" for g in gifs]
    path = out_dir / "report.md"
    path.write_text("\n".join(parts) + "\n")
    return path


def plot_training_curves(metrics: Path, out: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not metrics.exists():
        return False
    rows = [json.loads(x) for x in metrics.read_text().splitlines() if x.strip()]
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if "val/accuracy" in r]
    if not train:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    axes[0].plot([r["step"] for r in train], [r["loss"] for r in train], lw=0.8)
    axes[0].set_xlabel("step")
    axes[0].set_ylabel("train loss")
    for key, label in (("val/accuracy", "accuracy"), ("val/validity", "validity"),
                       ("val/placement@5", "placement@5"), ("val/button_accuracy", "buttons")):
        pts = [(r["step"], r[key]) for r in val if key in r]
        if pts:
            axes[1].plot(*zip(*pts), marker="o", ms=3, label=label)
    axes[1].set_xlabel("step")
    axes[1].set_ylabel("val (teacher-forced)")
    axes[1].set_ylim(0, 1)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return True
