"""Training throughput of the CPU preset against a baseline revision, in one run, on the same data.

Generates a small nine-task dataset, cuts a fixed sequence of training batches and a fixed set of
val batches from it, and trains two models on exactly those batches for the same number of steps:

- ``new``: this checkout's CPU preset (the shipped ``cpu_demo`` config, with its bfloat16 autocast
  where the CPU supports it), and variants of it (``--variants``: fp32, channels-last encoder);
- ``baseline``: the CPU preset of ``--baseline`` (a git revision, checked out into a temporary
  worktree and run in a subprocess with its own code).

Speed is timed in alternating rounds (baseline, new, baseline, new, ...: ``--rounds`` of
``--round-steps`` steps each, after warm-up), so that other load on the machine falls on both
alike; ``speedup`` is the median over rounds of new / baseline frames/s (``cpu_speedup``: the same
in this process's CPU time per step, which other load inflates much less; forward + backward + AdamW
step; the loader is not timed: benchmarks/loader_throughput.py does that). Then each model trains
``--steps`` steps on the same batch sequence and reports its val click NLL (nats per click, no
label smoothing: the negative log-likelihood of the demonstrated pixel, comparable across heads)
after the same number of frames. With ``--profile``, also where a step of the new model goes
(torch profiler, top operators).

    .venv/bin/python benchmarks/train_throughput.py [--baseline ff2b9eb] [--steps 300]
        [--variants fp32,channels_last] [--presets small,vit-s,vit-b]

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
train, val = data["train"], data["val"]
evals = [int(s) for s in sys.argv[3].split(",")]
timing_only = sys.argv[4] == "time"
m = ClickPolicy(preset(cfg.model.preset, window=cfg.data.window, **cfg.model.overrides))
opt = torch.optim.AdamW(m.parameters(), lr=cfg.optim.lr, betas=(0.9, 0.95), weight_decay=0.05)
times, cpu, nlls = [], [], {}

def val_nll():
    m.eval(); smoothing = m.cfg.label_smoothing; m.cfg.label_smoothing = 0.0
    nll = []
    with torch.no_grad():
        for b in val:
            _, info = m(b)
            nll.append(info.get("loss_pixel", info["loss_x"] + info["loss_y"]))
    m.train(); m.cfg.label_smoothing = smoothing
    return float(np.mean(nll))

for i in range(evals[-1]):
    b = train[i % len(train)]
    t0, c0 = time.perf_counter(), time.process_time()
    loss, _ = m(b)
    loss.backward(); opt.step(); opt.zero_grad(set_to_none=True)
    times.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
    if not timing_only and i + 1 in evals:
        nlls[str(i + 1)] = val_nll()
print(json.dumps({"params": m.num_params(), "step_s": times, "cpu_s": cpu, "val_nll": nlls}))
"""


def batches(store: EpisodeStore, split: str, n: int, size: int, window: int, seed: int,
            drop: tuple[str, ...] = ("stream", "task", "step")) -> list[dict]:
    """The first ``n`` batches of ``split``'s windows, without the columns ``drop`` names."""
    ds = WindowDataset(store, split, window=window, seed=seed)
    out = []
    for b in DataLoader(ds, batch_size=size):
        b = {k: v for k, v in b.items() if k not in drop}
        b["after_change"] = torch.zeros_like(b["valid"])  # the baseline's batches carry it
        out.append(b)
        if len(out) == n:
            break
    return out


def train_new(cfg, train: list[dict], val: list[dict], steps: int | list[int],
              bf16: bool | None = None, channels_last: bool = False, profile: bool = False,
              preset_name: str | None = None, timing_only: bool = False) -> dict:
    """Train on ``train`` (batch i at step i); the val NLL after each of ``steps`` (a list: the
    run is as long as its last)."""
    evals = [steps] if isinstance(steps, int) else list(steps)
    torch.manual_seed(0)
    name = preset_name or cfg.model.preset
    overrides = cfg.model.overrides if preset_name is None else {}
    model = ClickPolicy(preset(name, window=cfg.data.window, **overrides))
    if channels_last:
        model.encoder.to(memory_format=torch.channels_last)  # 4-D convolutions only
    objective = ClickLoss(model, cfg.loss)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=(0.9, 0.95),
                            weight_decay=cfg.optim.weight_decay)
    if bf16 is None:  # as training does: the config's setting, where the CPU supports it
        bf16 = cfg.optim.cpu_bf16 and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    times, cpu, nlls = [], [], {}

    def step(b):
        with amp:
            loss, _ = objective(b)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    def val_nll():
        model.eval()
        with torch.no_grad(), amp:
            nll = float(np.mean([objective(b)[1]["nll"] for b in val]))
        model.train()
        return nll

    for i in range(evals[-1]):
        t0, c0 = time.perf_counter(), time.process_time()
        step(train[i % len(train)])
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        if not timing_only and i + 1 in evals:
            nlls[str(i + 1)] = val_nll()
    out = {"params": model.num_params(), "step_s": times, "cpu_s": cpu, "val_nll": nlls}
    if profile:
        out["profile"] = top_operators(lambda: step(train[0]))
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
    """Median step time (wall and this process's CPU time, which other load on the machine
    inflates much less) and frames/s from it; the val NLL after each evaluated step count."""
    med = float(np.median(r["step_s"][warmup:]))
    cpu = float(np.median(r["cpu_s"][warmup:]))
    return {"params": r["params"], "step_s_median": round(med, 4), "cpu_s_median": round(cpu, 4),
            "frames_per_s": round(frames_per_step / med, 1),
            "frames_per_cpu_s": round(frames_per_step / cpu, 1),
            **({"val_nll": {k: round(v, 4) for k, v in r["val_nll"].items()}} if r["val_nll"] else {}),
            **({"profile": r["profile"]} if "profile" in r else {})}


class Baseline:
    """The baseline revision checked out in a temporary git worktree."""

    def __init__(self, rev: str, tmp: Path):
        self.wt = tmp / "baseline"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(self.wt), rev],
                       check=True, capture_output=True)
        self.config = self.wt / "configs" / "cpu_demo.yaml"
        if not self.config.exists():
            self.config = self.wt / "src" / "annobc" / "configs" / "cpu_demo.yaml"

    def run(self, data_path: Path, steps: int | list[int], mode: str) -> dict:
        env = dict(os.environ, PYTHONPATH=str(self.wt / "src"))
        evals = ",".join(map(str, [steps] if isinstance(steps, int) else steps))
        p = subprocess.run([sys.executable, "-c", BASELINE, str(data_path), str(self.config),
                            evals, mode], env=env, capture_output=True, text=True, check=True)
        return json.loads(p.stdout.strip().splitlines()[-1])

    def close(self) -> None:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(self.wt)],
                       capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--baseline", default="ff2b9eb", help="git revision of the baseline preset")
    ap.add_argument("--steps", default="300,1000",
                    help="the val NLL after these numbers of steps (comma-separated; one run each)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--round-steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--episodes-per-task", type=int, default=40)
    ap.add_argument("--variants", default="fp32,channels_last",
                    help="new-model variants timed against it: fp32 (no bfloat16), channels_last")
    ap.add_argument("--presets", default="", help="other presets to time (no baseline), e.g. small")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "train_throughput.json"))
    args = ap.parse_args()
    evals = sorted(int(x) for x in args.steps.split(","))
    cfg = load_config("cpu_demo")
    size, window = cfg.optim.batch_size, cfg.data.window
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "ds", Plan(tasks=resolve_tasks("all"), episodes_per_task=args.episodes_per_task),
                 workers=2, progress=False)
        store = EpisodeStore(Path(tmp) / "ds")
        # As many distinct batches as steps: repeating a few would measure memorisation.
        train = batches(store, "train", evals[-1], size, window, seed=0)
        val = batches(store, "val", 16, size, window, seed=1)
        data_path = Path(tmp) / "batches.pt"
        torch.save({"train": train, "val": val}, data_path)
        frames = size * window
        results, rounds = {}, []
        baseline = Baseline(args.baseline, Path(tmp))
        try:
            steps = args.warmup + args.round_steps
            for i in range(args.rounds):
                old = summary(baseline.run(data_path, steps, "time"), frames, args.warmup)
                new = summary(train_new(cfg, train, val, steps, timing_only=True), frames, args.warmup)
                rounds.append({"baseline_frames_per_s": old["frames_per_s"],
                               "new_frames_per_s": new["frames_per_s"],
                               "ratio": round(new["frames_per_s"] / old["frames_per_s"], 3),
                               "cpu_ratio": round(new["frames_per_cpu_s"] / old["frames_per_cpu_s"], 3)})
                print(f"round {i + 1}: {rounds[-1]}", flush=True)
            print(f"val NLL after {args.steps} steps each ...", flush=True)
            results["baseline"] = summary(baseline.run(data_path, evals, "train"), frames,
                                          args.warmup)
        finally:
            baseline.close()
        results["new"] = summary(train_new(cfg, train, val, evals, profile=args.profile),
                                 frames, args.warmup)
        print(f"baseline: {results['baseline']}\nnew: {results['new']}", flush=True)
        for v in [v for v in args.variants.split(",") if v]:
            r = train_new(cfg, train, val, steps, bf16=False if v == "fp32" else None,
                          channels_last=v == "channels_last", timing_only=True)
            r2 = train_new(cfg, train, val, steps, timing_only=True)  # the same moment, plain
            results[f"new+{v}"] = summary(r, frames, args.warmup)
            results[f"new+{v}"]["ratio_to_new"] = round(
                summary(r2, frames, args.warmup)["step_s_median"] / results[f"new+{v}"]["step_s_median"], 3)
            print(f"new+{v}: {results[f'new+{v}']}", flush=True)
        for name in [p for p in args.presets.split(",") if p]:
            small = 2 if name.startswith("vit") else size
            sub = [{k: v[:small] for k, v in b.items()} for b in train[:4]]
            r = train_new(cfg, sub, [{k: v[:small] for k, v in val[0].items()}], 12, preset_name=name)
            results[f"preset:{name}"] = summary(r, small * window, 2)
            print(f"preset {name}: {results[f'preset:{name}']}", flush=True)
    speedup = float(np.median([r["ratio"] for r in rounds]))
    cpu_speedup = float(np.median([r["cpu_ratio"] for r in rounds]))
    nll_new, nll_old = results["new"]["val_nll"], results["baseline"]["val_nll"]
    out = {"benchmark": "train_throughput", "config": "cpu_demo", "baseline_revision": args.baseline,
           "steps": evals, "batch": [size, window], "screen": [160, 128],
           "episodes_per_task": args.episodes_per_task, "torch_threads": torch.get_num_threads(),
           "speedup": round(speedup, 2), "cpu_speedup": round(cpu_speedup, 2), "rounds": rounds,
           "val_nll_new_minus_baseline": {k: round(nll_new[k] - nll_old[k], 4) for k in nll_new},
           "machine": describe(), "results": results}
    print(f"speedup {speedup:.2f}x (CPU time {cpu_speedup:.2f}x); val NLL new {nll_new} vs "
          f"baseline {nll_old}")
    save_results(args.out, out)


if __name__ == "__main__":
    main()
