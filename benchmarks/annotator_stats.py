"""The virtual annotators' behaviour on every task: `annobc stats TASK --episodes 200` for all tasks.

    .venv/bin/python benchmarks/annotator_stats.py [--episodes 200]

Writes benchmarks/results/annotator_stats.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, save_results  # noqa: E402

from annobc.tasks import get_task_class, run_annotator, task_ids  # noqa: E402
from annobc.tasks.stats import episode_stats  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "annotator_stats.json"))
    args = ap.parse_args()
    results = {}
    print("| task | personas | success | mean length (min-max) | correction rate | mistake rate | "
          "navigate / place / view / select / undo / done / invalid |")
    print("|---|---|---|---|---|---|---|")
    for t in task_ids():
        s = episode_stats(run_annotator(t, seed) for seed in range(args.episodes))
        s["personas"] = list(get_task_class(t).personas)
        results[t] = s
        mix = " / ".join(f"{s['action_mix'][c]:.3f}" for c in
                         ("navigate", "place", "view", "select", "undo", "done", "invalid"))
        print(f"| {t} | {len(s['personas'])} | {s['success_rate']:.3f} | {s['mean_length']:.1f} "
              f"({s['length_range'][0]}-{s['length_range'][1]}) | {s['correction_rate']:.3f} | "
              f"{s['mistake_rate']:.3f} | {mix} |", flush=True)
    out = {"benchmark": "annotator_stats", "persona": "default", "seeds": [0, args.episodes - 1],
           "machine": describe(), "results": results}
    save_results(args.out, out)


if __name__ == "__main__":
    main()
