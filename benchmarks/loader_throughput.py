"""Loader throughput and storage cost.

1. Frames per second delivered by ``WindowDataset`` through a torch DataLoader with 0, 1 and 2
   workers at the default screen (frames rendered on the fly by replay inside the workers).
2. Bytes per step on disk: the Parquet store against the same episodes' frames stored as PNG files
   (one per step), measured in the same run.

    .venv/bin/python benchmarks/loader_throughput.py [--episodes-per-task 10] [--window 8]

Writes benchmarks/results/loader_throughput.json.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe, save_results  # noqa: E402

import torch  # noqa: E402
from PIL import Image  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from annobc.data import EpisodeStore, Plan, generate, resolve_tasks  # noqa: E402
from annobc.data.windows import WindowDataset  # noqa: E402
from annobc.gui import DEFAULT_SCREEN  # noqa: E402
from annobc.tasks import replay  # noqa: E402


def loader_fps(store: EpisodeStore, workers: int, window: int, batch: int, repeats: int) -> dict:
    rates = []
    for r in range(repeats):
        ds = WindowDataset(store, "train", window=window, seed=r)
        dl = DataLoader(ds, batch_size=batch, num_workers=workers,
                        persistent_workers=False, prefetch_factor=4 if workers else None)
        t0 = time.perf_counter()
        frames = 0
        for b in dl:
            frames += int(b["valid"].sum())  # real frames delivered (padding excluded)
        rates.append(frames / (time.perf_counter() - t0))
    return {"frames_per_s_median": round(float(np.median(rates)), 1),
            "repeats": [round(x, 1) for x in rates],
            "windows_per_s_median": round(float(np.median(rates)) / window, 1)}


def png_bytes_per_step(store: EpisodeStore, n_episodes: int) -> tuple[float, int]:
    total, steps = 0, 0
    for eid in store.episode_ids()[:n_episodes]:
        for frame in list(replay(store.record(eid)))[:-1]:
            buf = io.BytesIO()
            Image.fromarray(frame).save(buf, format="PNG", optimize=False)
            total += buf.tell()
            steps += 1
    return total / steps, steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--episodes-per-task", type=int, default=10)
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "loader_throughput.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    tasks = resolve_tasks(args.tasks)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ds"
        generate(root, Plan(tasks=tasks, episodes_per_task=args.episodes_per_task), workers=2,
                 progress=False)
        store = EpisodeStore(root)
        n_steps = int(sum(store.episodes["length"]))
        parquet = sum(p.stat().st_size for p in root.rglob("*.parquet"))
        card = (root / "dataset.json").stat().st_size
        png_per_step, png_steps = png_bytes_per_step(store, n_episodes=len(tasks) * 2)
        loaders = {}
        for w in (0, 1, 2):
            loaders[f"{w}_workers"] = loader_fps(store, w, args.window, args.batch, args.repeats)
            print(f"{w} workers: {loaders[f'{w}_workers']['frames_per_s_median']:.0f} frames/s",
                  flush=True)
    per_step = parquet / n_steps
    out = {
        "benchmark": "loader_throughput",
        "screen": list(DEFAULT_SCREEN), "tasks": list(tasks),
        "episodes_per_task": args.episodes_per_task, "window": args.window, "batch": args.batch,
        "machine": describe(),
        "loader": loaders,
        "storage": {
            "steps": n_steps,
            "parquet_bytes": parquet, "card_bytes": card,
            "parquet_bytes_per_step": round(per_step, 2),
            "png_bytes_per_step": round(png_per_step, 1),
            "png_steps_measured": png_steps,
            "png_over_parquet_ratio": round(png_per_step / per_step, 1),
        },
    }
    print(f"storage: {per_step:.1f} B/step parquet vs {png_per_step:.0f} B/step PNG "
          f"({png_per_step / per_step:.0f}x)")
    save_results(args.out, out)


if __name__ == "__main__":
    main()
