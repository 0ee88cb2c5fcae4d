"""Describe the machine a benchmark ran on, for the results JSON."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save_results(path: str, results: dict) -> None:
    """Write a benchmark's results (with ``machine: describe()`` inside) as JSON, and say where."""
    import json
    from pathlib import Path

    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def describe() -> dict:
    import numpy

    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "git_commit": git_commit(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def named_runs_parser(doc: str, episodes: int):
    """The argument parser of benchmarks that compare runs: NAME=RUN_DIR ..., --episodes,
    --temperature (one or more), --split (whose seeds: val to choose a setting, test to report
    it), --out; ``parse`` returns (args, [(name, run_dir), ...])."""
    import argparse

    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", nargs="+", metavar="NAME=RUN_DIR")
    ap.add_argument("--episodes", type=int, default=episodes)
    ap.add_argument("--temperature", type=float, nargs="+", default=[0.4],
                    help="sampling temperature(s); several: each run at each")
    ap.add_argument("--split", choices=("val", "test"), default="test",
                    help="the dataset split whose seeds the scenes come from (default: test)")
    ap.add_argument("--out", default=None, help="results JSON (default: print only)")

    def parse():
        args = ap.parse_args()
        runs = []
        for item in args.runs:
            name, _, run = item.partition("=")
            if not run:
                ap.error(f"expected NAME=RUN_DIR, got {item!r}")
            runs.append((name, run))
        return args, runs

    return parse


def policy_and_scenes(run: str, task: str, split: str, n: int):
    """A run's policy (eval mode), its checkpoint state, ``task``'s parameters in the dataset it
    was trained on and the first ``n`` seeds of that dataset's ``split``: (model, state, params,
    seeds). Reads the dataset card alone, not the store, so runs on datasets of an older schema
    still replay their scenes."""
    import json
    from pathlib import Path

    from annobc.train.checkpoint import load_policy

    model, state = load_policy(run)
    model.eval()
    card = json.loads((Path(state["train_config"]["data"]["path"]) / "dataset.json").read_text())
    first, last = card["seed_ranges"][split]
    if n > last - first + 1:
        raise ValueError(f"the {split} split has {last - first + 1} seeds, asked for {n}")
    return model, state, card["tasks"][task]["params"], list(range(first, first + n))


def runs_at_temperatures(runs: list[tuple[str, str]], temperatures: list[float]):
    """(name, run_dir, temperature) for each run at each temperature; the name gets "@T" only
    when there are several."""
    for name, run in runs:
        for t in temperatures:
            yield (f"{name}@{t:g}" if len(temperatures) > 1 else name), run, t
