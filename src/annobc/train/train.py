"""Train the click policy. One script from one CPU to many GPUs:

    annobc train cpu_demo data.path=runs/data optim.max_steps=500
    torchrun --nproc_per_node 8 -m annobc.train gpu_paper

Linear: config, distributed set-up and seeding, data, model, optimizer, resume, loop.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from annobc.data.store import EpisodeStore
from annobc.data.windows import WindowDataset, WindowLoader
from annobc.learning import ClickLoss, teacher_forced
from annobc.models import ClickPolicy, preset
from annobc.tasks.base import CATEGORIES
from annobc.learning.checkpoint import init_weights, load_state, restore_training, save_checkpoint
from annobc.train.config import TrainConfig, save_config


class ShardStream:
    """Batches of one data shard, epoch after epoch, with an exactly resumable position."""

    def __init__(self, ds: WindowDataset, batch_size: int, workers: int):
        self.ds, self.batch_size, self.workers = ds, batch_size, workers
        self.epoch, self.consumed = 0, {}
        self._it = None

    def state(self) -> dict:
        return {"epoch": self.epoch, "consumed": {str(k): v for k, v in self.consumed.items()}}

    def load(self, st: dict) -> None:
        self.epoch = int(st["epoch"])
        self.consumed = {int(k): int(v) for k, v in st["consumed"].items()}
        self._it = None

    def next(self) -> dict:
        while True:
            if self._it is None:
                self.ds.set_epoch(self.epoch, self.consumed)
                self._it = iter(WindowLoader(self.ds, self.batch_size, self.workers))
            batch = next(self._it, None)
            if batch is None:  # epoch over
                self.epoch, self.consumed, self._it = self.epoch + 1, {}, None
                continue
            s = int(batch["stream"][0])  # a batch comes from one worker stream
            self.consumed[s] = self.consumed.get(s, 0) + len(batch["stream"])
            return batch


def category_weights(store: EpisodeStore, exponent: float) -> torch.Tensor:
    """Loss weight per click category: frequency ** -exponent, normalised to mean 1 over clicks."""
    counts = np.zeros(len(CATEGORIES))
    for t, s in store.card.get("stats", {}).items():
        n = s["episodes"] * s["mean_length"]
        counts += np.array([s["action_mix"][c] * n for c in CATEGORIES])
    freq = counts / max(counts.sum(), 1)
    w = np.where(freq > 0, np.maximum(freq, 1e-6) ** -exponent, 1.0)
    w = w / max((w * freq).sum(), 1e-12)
    return torch.tensor(w, dtype=torch.float32)


def lr_lambda(cfg: TrainConfig):
    o = cfg.optim

    def f(step: int) -> float:
        if step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        t = (step - o.warmup_steps) / max(1, o.max_steps - o.warmup_steps)
        return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
    return f


def param_groups(model: ClickPolicy, cfg: TrainConfig) -> list[dict]:
    o = cfg.optim
    groups = {(enc, decay): [] for enc in (True, False) for decay in (True, False)}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups[(name.startswith("encoder."), p.dim() >= 2)].append(p)
    return [{"params": ps, "lr": o.lr * (o.backbone_lr_mult if enc else 1.0),
             "weight_decay": o.weight_decay if decay else 0.0}
            for (enc, decay), ps in groups.items() if ps]


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict:
    # -- distributed set-up and seeding -------------------------------------------------------------
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    want_cuda = cfg.run.device == "cuda" or (cfg.run.device == "auto" and torch.cuda.is_available())
    device = torch.device(f"cuda:{local_rank}" if want_cuda else "cpu")
    if want_cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if want_cuda else "gloo")
    main_proc = rank == 0
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    torch.manual_seed(cfg.run.seed)
    run_dir = cfg.run_dir
    if main_proc:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")

    # -- data ------------------------------------------------------------------------------------------
    store = EpisodeStore(cfg.data.path)
    tasks = store.tasks if cfg.data.tasks == "all" else [t.strip() for t in cfg.data.tasks.split(",")]
    # A config's weights may name tasks this dataset lacks (e.g. the demo config on a subset).
    weights = {t: w for t, w in cfg.data.task_weights.items() if t in tasks}
    n_shards = cfg.data.shards or world
    if n_shards % world or cfg.optim.batch_size % n_shards:
        raise ValueError(f"data.shards ({n_shards}) must be a multiple of the world size ({world}) "
                         f"and divide optim.batch_size ({cfg.optim.batch_size})")
    per_shard = cfg.optim.batch_size // n_shards
    local_shards = range(rank * n_shards // world, (rank + 1) * n_shards // world)
    streams = {s: ShardStream(WindowDataset(store, "train", cfg.data.window, tasks,
                                            weights or None, seed=cfg.run.seed,
                                            rank=s, world_size=n_shards),
                              per_shard, cfg.data.workers) for s in local_shards}

    # -- model -----------------------------------------------------------------------------------------
    screen_w, screen_h = store.card["screen"]
    pcfg = preset(cfg.model.preset, screen_w=screen_w, screen_h=screen_h, window=cfg.data.window,
                  **cfg.model.overrides)
    model = ClickPolicy(pcfg).to(device)
    if cfg.model.init_from and not resume:
        init_weights(model, cfg.model.init_from)
    objective = ClickLoss(model, cfg.loss, category_weights(store, cfg.loss.category_weighting)).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, cfg), betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    start = 0
    metrics_path = run_dir / "metrics.jsonl"
    if resume:
        ck, state = load_state(run_dir)
        restore_training(ck, state, model, optimizer, scheduler)
        start = int(state["step"])
        for s, st in state["data"]["streams"].items():
            if int(s) in streams:
                streams[int(s)].load(st)
        if main_proc and metrics_path.exists():  # drop lines logged after the checkpoint
            keep = [ln for ln in metrics_path.read_text().splitlines()
                    if ln and json.loads(ln)["step"] <= start]
            metrics_path.write_text("".join(ln + "\n" for ln in keep))
    elif main_proc and metrics_path.exists():
        metrics_path.unlink()
    ddp = DDP(objective) if world > 1 else objective
    if want_cuda and cfg.optim.amp:
        amp = torch.autocast("cuda", dtype=torch.bfloat16)
    elif not want_cuda and cfg.optim.cpu_bf16 and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        amp = torch.autocast("cpu", dtype=torch.bfloat16)
    else:
        amp = nullcontext()

    def log(row: dict) -> None:
        if main_proc:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")

    def data_state() -> dict:
        local = {str(s): st.state() for s, st in streams.items()}
        if world > 1:
            gathered = [None] * world
            dist.all_gather_object(gathered, local)
            local = {k: v for part in gathered for k, v in part.items()}
        return {"streams": local}

    keep_steps = set(cfg.run.keep_steps)

    def checkpoint(step: int) -> None:
        ds = data_state()  # collective: every rank takes part
        if main_proc:
            save_checkpoint(run_dir, step, model, optimizer, scheduler, cfg.to_dict(), ds,
                            pinned=keep_steps)

    def validate(step: int) -> dict:
        if not main_proc or not store.episode_ids("val", tasks):
            return {}
        m = teacher_forced(model, store, "val", max_windows=cfg.run.eval_windows, device=device,
                           tasks=tasks, loss=cfg.loss)
        log({"step": step, **{f"val/{k}": v for k, v in m.items() if not isinstance(v, dict)},
             "val/by_task": m["by_task"], "val/accuracy_by_category": m.get("accuracy_by_category")})
        return m

    # -- loop ------------------------------------------------------------------------------------------
    from tqdm import tqdm

    bar = tqdm(total=cfg.optim.max_steps, initial=start, desc=f"train {cfg.run.name}", unit="step",
               file=sys.stderr, disable=not (progress and main_proc), dynamic_ncols=True)
    t_start = time.perf_counter()
    step = start
    frames_per_window = cfg.data.window
    while step < cfg.optim.max_steps:
        t0 = time.perf_counter()
        data_time = 0.0
        infos = []
        for micro in range(cfg.optim.grad_accum):
            td = time.perf_counter()
            parts = [streams[s].next() for s in local_shards]
            batch = {k: torch.cat([p[k] for p in parts]).to(device, non_blocking=True) for k in parts[0]}
            data_time += time.perf_counter() - td
            sync = micro == cfg.optim.grad_accum - 1 or world == 1
            with (nullcontext() if sync else ddp.no_sync()), amp:
                loss, info = ddp(batch)
                (loss / cfg.optim.grad_accum).backward()
            infos.append(info)
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        step_time = time.perf_counter() - t0
        if step % cfg.run.log_every == 0 or step == cfg.optim.max_steps:
            row = {"step": step, "lr": scheduler.get_last_lr()[0], "data_time": round(data_time, 4),
                   "step_time": round(step_time, 4),
                   "windows_per_s": round(cfg.optim.batch_size * cfg.optim.grad_accum / step_time, 1),
                   "epoch": min(st.epoch for st in streams.values())}
            row["frames_per_s"] = round(row["windows_per_s"] * frames_per_window, 1)
            for k in infos[0]:
                row[k] = float(np.mean([i[k] for i in infos]))
            log(row)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
        bar.update(1)
        out_of_time = cfg.optim.max_minutes > 0 and (time.perf_counter() - t_start) > 60 * cfg.optim.max_minutes
        if world > 1:
            flag = torch.tensor([float(out_of_time)], device=device)
            dist.all_reduce(flag)
            out_of_time = bool(flag.item() > 0)
        if step % cfg.run.eval_every == 0 and step < cfg.optim.max_steps and not out_of_time:
            validate(step)
        if ((step % cfg.run.ckpt_every == 0 or step in keep_steps) and step < cfg.optim.max_steps
                and not out_of_time):
            checkpoint(step)
        if out_of_time:
            break
    bar.close()
    checkpoint(step)
    final = validate(step)
    summary = {"step": step, "minutes": round((time.perf_counter() - t_start) / 60, 2),
               "params": model.num_params(), "val": final, "run_dir": str(run_dir)}
    if main_proc:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if world > 1:
        dist.barrier()
    return summary
