"""Training throughput per model preset: frames per second through forward + backward + AdamW step.

Uses real windows from a small generated dataset (one batch, reused, so the loader is not measured:
benchmarks/loader_throughput.py does that). Median over timed steps after warm-up. On CPU always;
on a GPU too when one is available (bfloat16 autocast, as training uses).

    .venv/bin/python benchmarks/train_throughput.py [--presets tiny,small,vit-s,vit-b] [--steps 5]

Writes benchmarks/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
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

from annobc.data import EpisodeStore, Plan, generate  # noqa: E402
from annobc.data.windows import WindowDataset  # noqa: E402
from annobc.models import ClickPolicy, preset  # noqa: E402

# Windows per step per preset: small enough for a 2-core CPU to finish a step in seconds.
CPU_BATCH = {"tiny": 16, "small": 16, "vit-s": 4, "vit-b": 2}
GPU_BATCH = {"tiny": 64, "small": 64, "vit-s": 32, "vit-b": 16}


def measure(name: str, batch: dict, device: str, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = ClickPolicy(preset(name, window=batch["frames"].shape[1])).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else nullcontext()
    batch = {k: v.to(device) for k, v in batch.items()}
    times = []
    for i in range(warmup + steps):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with amp:
            loss, _ = model(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    b, k = batch["frames"].shape[:2]
    med = float(np.median(times))
    return {"params": model.num_params(), "windows_per_step": b, "window": k,
            "step_s_median": round(med, 4), "frames_per_s": round(b * k / med, 1),
            "steps_timed": steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--presets", default="tiny,small,vit-s,vit-b")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_throughput.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "ds", Plan(tasks=("colored_dot_tracking", "neuron_tracking"),
                                        episodes_per_task=6), progress=False)
        store = EpisodeStore(Path(tmp) / "ds")
        big = next(iter(DataLoader(WindowDataset(store, "train", window=args.window), batch_size=64)))
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = {d: {} for d in devices}
    for d in devices:
        sizes = CPU_BATCH if d == "cpu" else GPU_BATCH
        for name in args.presets.split(","):
            batch = {k: v[: sizes[name]] for k, v in big.items()}
            r = measure(name, batch, d, args.steps, args.warmup)
            results[d][name] = r
            print(f"{d:<5} {name:<6} {r['params'] / 1e6:6.1f}M params  {r['frames_per_s']:8.1f} frames/s "
                  f"({r['step_s_median']:.3f} s/step, {r['windows_per_step']}x{r['window']} frames)",
                  flush=True)
    out = {"benchmark": "train_throughput", "screen": [160, 128], "torch_threads": torch.get_num_threads(),
           "machine": describe(), "results": results}
    save_results(args.out, out)


if __name__ == "__main__":
    main()
