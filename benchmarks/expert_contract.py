"""The expert contract at full size: for every task, the three figures that
tests/tasks/test_expert_contract.py checks at CI counts (annobc.tasks.contract).

    .venv/bin/python benchmarks/expert_contract.py [--seeds 200] [--tasks all]

- own-state agreement: over 200 mistake-free annotator episodes, the share of steps at which the
  task's expert (a second annotator of the episode, labelling) names the click the script made;
- foreign-state success: after 5, 20 or 60 clicks that are not the expert's (uniformly random
  clicks on elements other than DONE, or the annotator with mistakes tripled and never noticed),
  the share of 200 episodes the expert finishes successfully within 600 clicks;
- mistake removal: from 200 states holding a wrong annotation, the share the expert removes within
  the task's ``correction_length`` clicks.

Writes benchmarks/results/expert_contract.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, save_results  # noqa: E402

from annobc.tasks import contract, get_task_class, task_ids  # noqa: E402

N_ROLLIN = (5, 20, 60)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "expert_contract.json"))
    args = ap.parse_args()
    tasks = task_ids() if args.tasks == "all" else args.tasks.split(",")
    cols = [f"{k} {n}" for k in contract.ROLLIN_KINDS for n in N_ROLLIN]
    print("| task | own-state agreement | " + " | ".join(cols) + " | mistake removal (within) |")
    print("|---" * (3 + len(cols)) + "|")
    results = {}
    for t in tasks:
        t0 = time.perf_counter()
        own = contract.own_state_agreement(t, range(args.seeds))
        foreign = {f"{k}_{n}": contract.foreign_state_success(t, range(10_000, 10_000 + args.seeds), k, n)
                   for k in contract.ROLLIN_KINDS for n in N_ROLLIN}
        removal = contract.mistake_removal(t, cases=args.seeds)
        results[t] = {"own_state_agreement": own, "foreign_state_success": foreign,
                      "mistake_removal": removal, "seconds": round(time.perf_counter() - t0, 1)}
        print(f"| {t} | {own['agreement']:.4f} ({own['steps']} steps) | "
              + " | ".join(f"{foreign[c.replace(' ', '_')]['success']:.3f}" for c in cols)
              + f" | {removal['removal_rate']:.3f} of {removal['cases']} "
                f"({get_task_class(t).correction_length} clicks) |", flush=True)
    save_results(args.out, {"benchmark": "expert_contract", "seeds": args.seeds,
                            "max_clicks": contract.MAX_CLICKS, "machine": describe(),
                            "results": results})


if __name__ == "__main__":
    main()
