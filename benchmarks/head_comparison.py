"""Click heads compared on the same data and the same step budget, teacher-forced and closed loop.

Variants (all the `tiny` CNN preset, colored_dot_tracking by default):
  xy            the published head: x over W and y over H, plain loss
  heatmap       a score for every screen pixel (bilinear-upsampled stride-4 cell scores), plain loss
  heatmap+rare  heatmap with rare clicks handled on purpose: loss weighted by click category
                (frequency ** -0.5) and an auxiliary click-category loss
  xy+rare       the xy head with the same handling
  heatmap+rare+context  heatmap+rare whose stride-4 map also gets the deeper conv stages'
                features (FPN-style lateral connections: more context per cell)
  heatmap+rare+history  heatmap+rare whose cells also see themselves over the last 8 frames
                (causal temporal convolution) and score their own (x, y) position

    .venv/bin/python benchmarks/head_comparison.py [--steps 800] [--tasks colored_dot_tracking]

Writes benchmarks/results/head_comparison.json (and runs under runs/heads/, not committed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, save_results  # noqa: E402

from annobc.data import Plan, generate, resolve_tasks  # noqa: E402
from annobc.eval.evaluate import evaluate  # noqa: E402
from annobc.train.config import load_config  # noqa: E402
from annobc.train.train import train  # noqa: E402

VARIANTS = {
    "xy": "{head: xy, aux_category: 0.0}",
    "heatmap": "{head: heatmap, aux_category: 0.0}",
    "heatmap+rare": "{head: heatmap, aux_category: 0.2}",
    "xy+rare": "{head: xy, aux_category: 0.2}",
    "heatmap+rare+context": "{head: heatmap, aux_category: 0.2, spatial_context: true}",
    "heatmap+rare+history": "{head: heatmap, aux_category: 0.2, spatial_history: 8, spatial_coords: true}",
}
WEIGHTING = {"xy": 0.0, "heatmap": 0.0, "heatmap+rare": 0.5, "xy+rare": 0.5,
             "heatmap+rare+context": 0.5, "heatmap+rare+history": 0.5}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tasks", default="colored_dot_tracking")
    ap.add_argument("--episodes-per-task", type=int, default=300)
    ap.add_argument("--steps", type=int, default=800, help="optimizer steps per variant (same for all)")
    ap.add_argument("--eval-episodes", type=int, default=30)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out-dir", default="runs/heads")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "head_comparison.json"))
    ap.add_argument("--merge", action="store_true", help="add to the existing results file")
    args = ap.parse_args()
    tasks = resolve_tasks(args.tasks)
    data = Path(args.out_dir) / "data"
    generate(data, Plan(tasks=tasks, episodes_per_task=args.episodes_per_task), workers=2)
    results = {}
    for name in args.variants.split(","):
        cfg = load_config("cpu_demo", [
            f"data.path={data}", f"run.out_dir={args.out_dir}", f"run.name={name.replace('+', '_')}",
            f"model.overrides={VARIANTS[name]}", f"data.category_weighting={WEIGHTING[name]}",
            f"optim.max_steps={args.steps}", "optim.max_minutes=0", "run.eval_every=100000",
            "run.ckpt_every=100000"])
        summary = train(cfg)
        res = evaluate(str(cfg.run_dir), list(tasks), episodes=args.eval_episodes, temperature=0.4,
                       max_steps=300, out=str(cfg.run_dir / "eval"), gifs_per_task=1,
                       tf_windows=2048, recovery_seeds=20, progress=False)
        tf = res["teacher_forced"]
        results[name] = {
            "train_steps": summary["step"], "train_minutes": summary["minutes"],
            "params": summary["params"],
            "teacher_forced": {k: tf.get(k) for k in ("accuracy", "validity", "placement@2",
                                                      "placement@5", "button_accuracy")},
            "teacher_forced_by_category": tf.get("accuracy_by_category"),
            "closed_loop": {t: {k: m[k] for k in ("success_rate", "success_ci95", "score", "done_rate",
                                                  "mean_length", "action_validity", "action_mix")}
                            for t, m in res["closed_loop"].items()},
            "mistake_recovery": res["mistake_recovery"],
        }
        cl = next(iter(results[name]["closed_loop"].values()))
        print(f"{name:<13} steps {summary['step']:>5}  TF place@5 {tf.get('placement@5', 0):.3f}  "
              f"buttons {tf.get('button_accuracy', 0):.3f}  done-clicks {tf['accuracy_by_category'].get('done', 0):.2f}"
              f"  | closed loop success {cl['success_rate']:.2f} done {cl['done_rate']:.2f}", flush=True)
    if args.merge and Path(args.out).exists():
        results = {**json.loads(Path(args.out).read_text())["results"], **results}
    out = {"benchmark": "head_comparison", "tasks": list(tasks), "steps_per_variant": args.steps,
           "episodes_per_task": args.episodes_per_task, "eval_episodes": args.eval_episodes,
           "machine": describe(), "results": results}
    save_results(args.out, out)


if __name__ == "__main__":
    main()
