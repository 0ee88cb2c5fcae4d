"""Training throughput of the CPU preset against a baseline revision, in one run, on the same data.

Generates a small nine-task dataset, cuts a fixed sequence of training batches and a fixed set of
val batches from it, and trains two models on exactly those batches for the same number of steps:

- ``new``: this checkout's CPU preset (the shipped ``cpu_demo`` config), and variants of it
  (``--variants``: bfloat16 autocast, channels-last);
- ``baseline``: the CPU preset of ``--baseline`` (a git revision, checked out into a temporary
  worktree and run in a subprocess with its own code).

Reports the median frames/s of forward + backward + AdamW step (the loader is not timed:
benchmarks/loader_throughput.py does that), the ratio ``speedup`` = new / baseline, and each model's
val click NLL (nats per click, no label smoothing: the negative log-likelihood of the
demonstrated pixel, comparable across heads) after the same number of frames. With ``--profile``,
also where a step of each goes (torch profiler, top operators).

    .venv/bin/python benchmarks/train_throughput.py [--baseline ff2b9eb] [--steps 300]
        [--variants bf16,channels_last] [--presets small,vit-s,vit-b]

Writes benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, save_results  # noqa: E402

from annobc.data import EpisodeStore, Plan, generate, resolve_tasks  # noqa: E402
from annobc.data.windows import WindowDataset  # noqa: E402
from annobc.learning import ClickLoss  # noqa: E402
from annobc.models import ClickPolicy, preset  # noqa: E402
from annobc.train.config import load_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# The baseline's side: run with the baseline's own code (PYTHONPATH=<worktree>/src). It trains its
# CPU preset on the same batches and prints one JSON line.
BASELINE = r"""
import json, sys, time, numpy as np, torch
from annobc.models import ClickPolicy, preset
from annobc.train.config import load_config
torch.manual_seed(0)
cfg = load_config(sys.argv[2])
data = torch.load(sys.argv[1])
train, val, steps = data["train"], data["val"], int(sys.argv[3])
m = ClickPolicy(preset(cfg.model.preset, window=cfg.data.window, **cfg.model.overrides))
opt = torch.optim.AdamW(m.parameters(), lr=cfg.optim.lr, betas=(0.9, 0.95), weight_decay=0.05)
times = []
for i in range(steps):
    b = train[i % len(train)]
    t0 = time.perf_counter()
    loss, _ = m(b)
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    times.append(time.perf_counter() - t0)
m.eval(); m.cfg.label_smoothing = 0.0
nll = []
with torch.no_grad():
    for b in val:
        _, info = m(b)
        nll.append(info.get("loss_pixel", info["loss_x"] + info["loss_y"]))
print(json.dumps({"params": m.num_params(), "step_s": times, "val_nll": float(np.mean(nll))}))
"""


def batches(store: EpisodeStore, split: str, n: int, size: int, window: int, seed: int) -> list[dict]:
    ds = WindowDataset(store, split, window=window, seed=seed)
    out = []
    for b in DataLoader(ds, batch_size=size):
        b = {k: v for k, v in b.items() if k not in ("stream", "task", "step")}
        b["after_change"] = torch.zeros_like(b["valid"])  # the baseline's batches carry it
        out.append(b)
        if len(out) == n:
            break
    return out


def train_new(cfg, train: list[dict], val: list[dict], steps: int, bf16: bool = False,
              channels_last: bool = False, profile: bool = False, preset_name: str | None = None) -> dict:
    torch.manual_seed(0)
    name = preset_name or cfg.model.preset
    overrides = cfg.model.overrides if preset_name is None else {}
    model = ClickPolicy(preset(name, window=cfg.data.window, **overrides))
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    objective = ClickLoss(model, cfg.loss)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=(0.9, 0.95),
                            weight_decay=cfg.optim.weight_decay)
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    times = []

    def step(b):
        with amp:
            loss, _ = objective(b)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(steps):
        t0 = time.perf_counter()
        step(train[i % len(train)])
        times.append(time.perf_counter() - t0)
    out = {"params": model.num_params(), "step_s": times}
    if profile:
        out["profile"] = top_operators(lambda: step(train[0]))
    model.eval()
    with torch.no_grad(), amp:
        out["val_nll"] = float(np.mean([objective(b)[1]["nll"] for b in val]))
    return out


def top_operators(fn, n: int = 12) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(3):
            fn()
    rows = sorted(p.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:n]
    total = sum(e.self_cpu_time_total for e in p.key_averages())
    return [{"op": e.key, "self_share": round(e.self_cpu_time_total / total, 3)} for e in rows]


def summary(r: dict, frames_per_step: int, warmup: int) -> dict:
    med = float(np.median(r["step_s"][warmup:]))
    return {"params": r["params"], "step_s_median": round(med, 4),
            "frames_per_s": round(frames_per_step / med, 1), "val_nll": round(r["val_nll"], 4),
            **({"profile": r["profile"]} if "profile" in r else {})}


def run_baseline(rev: str, data_path: Path, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        wt = Path(tmp) / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(wt), rev],
                       check=True, capture_output=True)
        try:
            config = wt / "configs" / "cpu_demo.yaml"
            if not config.exists():
                config = wt / "src" / "annobc" / "configs" / "cpu_demo.yaml"
            env = dict(os.environ, PYTHONPATH=str(wt / "src"))
            p = subprocess.run([sys.executable, "-c", BASELINE, str(data_path), str(config), str(steps)],
                               env=env, capture_output=True, text=True, check=True)
            return json.loads(p.stdout.strip().splitlines()[-1])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(wt)],
                           capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--baseline", default="ff2b9eb", help="git revision of the baseline preset")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--episodes-per-task", type=int, default=20)
    ap.add_argument("--variants", default="bf16,channels_last")
    ap.add_argument("--presets", default="", help="other presets to time (no baseline), e.g. small")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_throughput.json"))
    args = ap.parse_args()
    cfg = load_config("cpu_demo")
    size, window = cfg.optim.batch_size, cfg.data.window
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "ds", Plan(tasks=resolve_tasks("all"), episodes_per_task=args.episodes_per_task),
                 workers=2, progress=False)
        store = EpisodeStore(Path(tmp) / "ds")
        train = batches(store, "train", 64, size, window, seed=0)
        val = batches(store, "val", 16, size, window, seed=1)
        data_path = Path(tmp) / "batches.pt"
        torch.save({"train": train, "val": val}, data_path)
        frames = size * window
        results = {}
        print(f"baseline {args.baseline}: {args.steps} steps of {size}x{window} frames ...", flush=True)
        results["baseline"] = summary(run_baseline(args.baseline, data_path, args.steps), frames,
                                      args.warmup)
        print(f"  {results['baseline']}", flush=True)
        results["new"] = summary(train_new(cfg, train, val, args.steps, profile=args.profile), frames,
                                 args.warmup)
        print(f"new: {results['new']}", flush=True)
        for v in [v for v in args.variants.split(",") if v]:
            r = train_new(cfg, train, val, args.steps, bf16=v == "bf16", channels_last=v == "channels_last")
            results[f"new+{v}"] = summary(r, frames, args.warmup)
            print(f"new+{v}: {results[f'new+{v}']}", flush=True)
        for name in [p for p in args.presets.split(",") if p]:
            small = 2 if name.startswith("vit") else size
            sub = [{k: v[:small] for k, v in b.items()} for b in train[:4]]
            r = train_new(cfg, sub, [{k: v[:small] for k, v in val[0].items()}], 12, preset_name=name)
            results[f"preset:{name}"] = summary(r, small * window, 2)
            print(f"preset {name}: {results[f'preset:{name}']}", flush=True)
    speedup = results["new"]["frames_per_s"] / results["baseline"]["frames_per_s"]
    out = {"benchmark": "train_throughput", "config": "cpu_demo", "baseline_revision": args.baseline,
           "steps": args.steps, "batch": [size, window], "screen": [160, 128],
           "episodes_per_task": args.episodes_per_task, "torch_threads": torch.get_num_threads(),
           "speedup": round(speedup, 2),
           "val_nll_new_minus_baseline": round(results["new"]["val_nll"] - results["baseline"]["val_nll"], 4),
           "machine": describe(), "results": results}
    print(f"speedup {speedup:.2f}x; val NLL new {results['new']['val_nll']} vs baseline "
          f"{results['baseline']['val_nll']}")
    save_results(args.out, out)


if __name__ == "__main__":
    main()
