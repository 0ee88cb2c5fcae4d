"""Variants of the CPU preset on the same batches: training step time and val click NLL per task.

Generates a small nine-task dataset, cuts a fixed sequence of distinct training batches and a
fixed set of val batches from it, and trains the shipped ``cpu_demo`` model and each variant on
exactly those batches, one after the other, from the same seed. A variant is ``name:key=value,...``
where a key is a ``PolicyConfig`` field (``cell_history=4``) or one of the encoder's building
blocks this benchmark swaps (``act=relu``: ReLU for GELU after each convolution; ``norm=none``: no
GroupNorm, the convolutions with a bias instead). Reported per variant: the median step time
(forward, backward, AdamW; the loader is not timed), its ratio to the preset's, and the val click
NLL (nats per click, no label smoothing) pooled and per task after ``--steps`` steps.

    .venv/bin/python benchmarks/model_variants.py --steps 300 \
        --variants "relu:act=relu" "relu_nonorm:act=relu,norm=none" "hist4:cell_history=4"

Writes benchmarks/results/model_variants.json. Run nothing else beside it: the variants are
timed one after another, not interleaved.
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
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, save_results  # noqa: E402
from train_throughput import batches  # noqa: E402

import annobc.models.encoders as encoders  # noqa: E402
from annobc.data import EpisodeStore, Plan, generate, resolve_tasks  # noqa: E402
from annobc.learning import ClickLoss  # noqa: E402
from annobc.models import ClickPolicy, preset  # noqa: E402
from annobc.train.config import load_config  # noqa: E402

ACTS = {"gelu": nn.GELU, "relu": nn.ReLU}
BLOCK_KEYS = ("act", "norm")


def parse_variant(text: str) -> tuple[str, dict]:
    """``name:key=value,...`` -> (name, {key: value}); values are ints where they parse."""
    name, _, body = text.partition(":")
    if not name or not body:
        raise SystemExit(f"variant {text!r}: expected NAME:KEY=VALUE[,KEY=VALUE]")
    out = {}
    for item in body.split(","):
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"variant {text!r}: {item!r} is not KEY=VALUE")
        out[key] = int(value) if value.lstrip("-").isdigit() else value
    return name, out


def conv_block(act: str, norm: str):
    """The encoder's conv -> norm -> activation block with its parts swapped."""
    if act not in ACTS or norm not in ("group", "none"):
        raise SystemExit(f"act must be one of {sorted(ACTS)} and norm group|none, got {act}, {norm}")

    def block(a: int, b: int, kernel: int, stride: int) -> nn.Sequential:
        layers = [nn.Conv2d(a, b, kernel, stride=stride, padding=(kernel - stride + 1) // 2,
                            bias=norm == "none")]
        if norm == "group":
            layers.append(nn.GroupNorm(min(8, b), b))
        return nn.Sequential(*layers, ACTS[act]())
    return block


def train_variant(cfg, train: list[dict], val: list[dict], task_names: list[str],
                  overrides: dict) -> dict:
    block_opts = {k: overrides.pop(k) for k in BLOCK_KEYS if k in overrides}
    kept = encoders.conv_norm_act
    if block_opts:
        encoders.conv_norm_act = conv_block(block_opts.get("act", "gelu"), block_opts.get("norm", "group"))
    try:
        torch.manual_seed(0)
        model = ClickPolicy(preset(cfg.model.preset, window=cfg.data.window,
                                   **{**cfg.model.overrides, **overrides}))
    finally:
        encoders.conv_norm_act = kept
    objective = ClickLoss(model, cfg.loss)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.lr, betas=(0.9, 0.95),
                            weight_decay=cfg.optim.weight_decay)
    bf16 = cfg.optim.cpu_bf16 and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    amp = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    times = []
    for b in train:
        t0 = time.perf_counter()
        with amp:
            loss, _ = objective({k: v for k, v in b.items() if k != "task"})
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
    model.eval()
    per_task: dict[str, list[float]] = {}
    pooled = []
    with torch.no_grad(), amp:
        for b in val:
            pooled.append(objective({k: v for k, v in b.items() if k != "task"})[1]["nll"])
            for t in b["task"].unique().tolist():
                rows = b["task"] == t
                sub = {k: v[rows] for k, v in b.items() if k != "task"}
                if sub["valid"].any():
                    per_task.setdefault(task_names[t], []).append(objective(sub)[1]["nll"])
    return {"params": model.num_params(), "step_s_median": round(float(np.median(times[5:])), 4),
            "val_nll": round(float(np.mean(pooled)), 4),
            "val_nll_by_task": {t: round(float(np.mean(v)), 4) for t, v in sorted(per_task.items())},
            "bf16": bool(bf16)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--episodes-per-task", type=int, default=40)
    ap.add_argument("--val-batches", type=int, default=16)
    ap.add_argument("--variants", nargs="+",
                    default=["relu:act=relu", "relu_nonorm:act=relu,norm=none", "hist4:cell_history=4"])
    ap.add_argument("--base", default="", help="KEY=VALUE,... applied to the preset and every "
                    "variant (a smaller model for a quick check)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "model_variants.json"))
    args = ap.parse_args(argv)
    variants = dict(parse_variant(v) for v in args.variants)  # fails on a bad one before any work
    base = parse_variant("base:" + args.base)[1] if args.base else {}
    cfg = load_config("cpu_demo")
    size, window = args.batch_size or cfg.optim.batch_size, cfg.data.window
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "ds", Plan(tasks=resolve_tasks("all"), episodes_per_task=args.episodes_per_task),
                 workers=2, progress=False)
        store = EpisodeStore(Path(tmp) / "ds")
        # As many distinct batches as steps: repeating a few would measure memorisation.
        keep_task = ("stream", "step")  # the task column splits the val NLL by task
        train = batches(store, "train", args.steps, size, window, seed=0, drop=keep_task)
        val = batches(store, "val", args.val_batches, size, window, seed=1, drop=keep_task)
        names = list(store.tasks)
    results = {}
    for name, over in {"preset": {}, **variants}.items():
        results[name] = train_variant(cfg, train, val, names, {**base, **over})
        results[name]["overrides"] = over
        if name != "preset":
            results[name]["speedup"] = round(results["preset"]["step_s_median"]
                                             / results[name]["step_s_median"], 3)
            results[name]["val_nll_minus_preset"] = round(results[name]["val_nll"]
                                                          - results["preset"]["val_nll"], 4)
        print(name, {k: v for k, v in results[name].items() if k != "val_nll_by_task"}, flush=True)
    save_results(args.out, {"benchmark": "model_variants", "config": "cpu_demo", "steps": args.steps,
                            "batch": [size, window], "episodes_per_task": args.episodes_per_task, "base": base,
                            "command": "python benchmarks/model_variants.py " + " ".join(argv or sys.argv[1:]),
                            "machine": describe(), "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
