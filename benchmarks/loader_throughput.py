"""Loader throughput and storage cost.

1. Frames per second delivered by ``WindowDataset`` with 0, 1 and 2 worker processes at the
   default screen (frames rendered on the fly by replay inside the workers), through the
   project's ``WindowLoader`` (frames through a shared-memory ring) and, in the same run, through
   a plain ``DataLoader`` (default collate: one new shared-memory segment per field and batch).
   Time to the first batch is reported apart from the rate after it.
2. Where a worker's time goes: the same windows, rendered once and held in memory, sent through
   one worker (transfer only), against rendering alone in a forked process.
3. The paper's scale: frames/s per core at its 448x358 screen against the frames/s one ViT-B
   (``vit-b``) training step consumes at an assumed sustained GPU throughput (FLOPs from torch's
   FlopCounterMode; an estimate, no GPU is measured): the loader cores a GPU needs.
4. Bytes per step on disk: the Parquet store against the same episodes' frames stored as PNG files
   (one per step), measured in the same run.

    .venv/bin/python benchmarks/loader_throughput.py [--episodes-per-task 10] [--window 8]

Writes benchmarks/results/loader_throughput.json.
"""

from __future__ import annotations

import argparse
import io
import os
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
from annobc.data.windows import WindowDataset, WindowLoader  # noqa: E402
from annobc.models import preset  # noqa: E402
from annobc.study.common import GPU_EFFECTIVE_TFLOPS, train_flops_per_step  # noqa: E402
from annobc.gui import DEFAULT_SCREEN  # noqa: E402
from annobc.tasks import replay  # noqa: E402


def timed(batches) -> tuple[float, float]:
    """(seconds to the first batch, real frames/s after it) over an iterable of batches."""
    t0 = time.perf_counter()
    first, frames = None, 0
    for b in batches:
        if first is None:
            first, t1 = time.perf_counter() - t0, time.perf_counter()
        else:
            frames += int(b["valid"].sum())  # real frames delivered (padding excluded)
    return first, frames / (time.perf_counter() - t1)


def loader_fps(store: EpisodeStore, workers: int, window: int, batch: int, repeats: int,
               plain: bool = False) -> dict:
    rates, firsts = [], []
    for r in range(repeats):
        ds = WindowDataset(store, "train", window=window, seed=r)
        if plain:
            batches = DataLoader(ds, batch_size=batch, num_workers=workers,
                                 prefetch_factor=4 if workers else None)
        else:
            batches = WindowLoader(ds, batch, workers)
        first, fps = timed(batches)
        rates.append(fps)
        firsts.append(first)
    return {"frames_per_s_median": round(float(np.median(rates)), 1),
            "repeats": [round(x, 1) for x in rates],
            "first_batch_s_median": round(float(np.median(firsts)), 3),
            "windows_per_s_median": round(float(np.median(rates)) / window, 1)}


class HeldWindows(torch.utils.data.IterableDataset):
    """Windows rendered once and held in memory: a worker's transfer cost without its rendering."""

    def __init__(self, ds: WindowDataset, n: int):
        self.store, self.window = ds.store, ds.window  # what WindowLoader reads
        self.samples = [s for _, s in zip(range(n), ds)]

    def __iter__(self):
        return iter(self.samples)


def forked_render_fps(store: EpisodeStore, window: int) -> float:
    """Frames/s of iterating the dataset (rendering, no batching) inside a forked process."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        t0, n = time.perf_counter(), 0
        for s in WindowDataset(store, "train", window=window, seed=0):
            n += int(s["valid"].sum())
        os.write(w, repr(n / (time.perf_counter() - t0)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    return float(os.read(r, 64))


def transfer_split(store: EpisodeStore, window: int, batch: int, repeats: int) -> dict:
    t0, n = time.perf_counter(), 0
    for s in WindowDataset(store, "train", window=window, seed=0):
        n += int(s["valid"].sum())
    render_main = n / (time.perf_counter() - t0)
    held = HeldWindows(WindowDataset(store, "train", window=window, seed=0), n=batch * 60)
    out = {"render_only_main_frames_per_s": round(render_main, 1),
           "render_only_forked_frames_per_s": round(forked_render_fps(store, window), 1)}
    for name, make in (("held_0_workers", lambda: DataLoader(held, batch_size=batch)),
                       ("held_1_worker_dataloader",
                        lambda: DataLoader(held, batch_size=batch, num_workers=1, prefetch_factor=4)),
                       ("held_1_worker_windowloader", lambda: WindowLoader(held, batch, 1))):
        out[name + "_frames_per_s"] = round(float(np.median([timed(make())[1]
                                                              for _ in range(repeats)])), 1)
    return out


def paper_scale(tasks, episodes_per_task: int, window: int, repeats: int, tmp: Path) -> dict:
    """Loader frames/s per core at the paper's screen against what a ViT-B step consumes."""
    screen = (448, 358)
    root = tmp / "ds448"
    generate(root, Plan(tasks=tasks, episodes_per_task=episodes_per_task, screen=screen),
             workers=2, progress=False)
    store = EpisodeStore(root)
    batch = 32  # gpu_paper's batch per GPU
    per_core = loader_fps(store, 0, window, batch, repeats)["frames_per_s_median"]
    one_worker = loader_fps(store, 1, window, batch, repeats)["frames_per_s_median"]
    pcfg = preset("vit-b", screen_w=screen[0], screen_h=screen[1], window=window, head="xy",
                  pretrained="")
    flops = train_flops_per_step(pcfg, batch)
    consumed = batch * window / (flops / (GPU_EFFECTIVE_TFLOPS * 1e12))
    return {"screen": list(screen), "batch": batch,
            "loader_frames_per_s_per_core": per_core,
            "loader_frames_per_s_1_worker": one_worker,
            "vit_b_train_flops_per_step": flops,
            "assumed_gpu_tflops": GPU_EFFECTIVE_TFLOPS,
            "vit_b_frames_per_s_consumed": round(consumed, 1),
            "loader_cores_per_gpu": round(consumed / per_core, 2),
            "note": "the ViT-B figure is an estimate (FLOPs at an assumed sustained throughput), "
                    "not a GPU measurement"}


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
        loaders, plain = {}, {}
        for w in (0, 1, 2):
            loaders[f"{w}_workers"] = loader_fps(store, w, args.window, args.batch, args.repeats)
            plain[f"{w}_workers"] = loader_fps(store, w, args.window, args.batch, args.repeats,
                                               plain=True)
            print(f"{w} workers: WindowLoader {loaders[f'{w}_workers']['frames_per_s_median']:.0f} "
                  f"frames/s, DataLoader {plain[f'{w}_workers']['frames_per_s_median']:.0f}",
                  flush=True)
        split = transfer_split(store, args.window, args.batch, args.repeats)
        print("transfer:", split, flush=True)
        paper = paper_scale(tasks, max(2, args.episodes_per_task // 5), args.window, args.repeats,
                            Path(tmp))
        print("paper scale:", paper, flush=True)
    per_step = parquet / n_steps
    out = {
        "benchmark": "loader_throughput",
        "screen": list(DEFAULT_SCREEN), "tasks": list(tasks),
        "episodes_per_task": args.episodes_per_task, "window": args.window, "batch": args.batch,
        "machine": describe(),
        "loader": loaders,
        "dataloader_default_collate": plain,
        "worker_transfer": split,
        "paper_scale": paper,
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
