"""Checkpoints: weights in safetensors plus a JSON state, written atomically.

    <run>/checkpoints/step-0000250/model.safetensors      model weights
    <run>/checkpoints/step-0000250/optimizer.safetensors  optimizer tensors (AdamW moments) and RNG
    <run>/checkpoints/step-0000250/state.json             step, model config, train config,
                                                          optimizer groups, scheduler, data position
    <run>/checkpoints/latest                              name of the newest complete checkpoint

A checkpoint folder is written under a temporary name and renamed when complete, and ``latest`` is
replaced atomically after it, so a kill at any moment leaves the previous checkpoint usable.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from annobc.data.store import atomic_write_bytes, atomic_write_json
from annobc.models import ClickPolicy, PolicyConfig


def _flatten_optimizer(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, meta = {}, {"param_groups": opt_state["param_groups"], "state": {}}
    for idx, st in opt_state["state"].items():
        meta["state"][str(idx)] = {}
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"state.{idx}.{k}"] = v.detach().cpu().contiguous()
            else:
                meta["state"][str(idx)][k] = v
    return tensors, meta


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict = {int(i): dict(extra) for i, extra in meta["state"].items()}
    for key, v in tensors.items():
        if key.startswith("state."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(run_dir: Path, step: int, model: ClickPolicy, optimizer, scheduler,
                    train_config: dict, data_state: dict, keep: int = 2,
                    pinned=()) -> Path:
    """Save step ``step``; of the earlier checkpoints the newest ``keep`` (this one included) stay,
    and so do those of the steps in ``pinned``, whatever their age."""
    ckdir = Path(run_dir) / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    final = ckdir / name
    tmp = ckdir / f".{name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(tmp / "model.safetensors"))
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    opt_tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available():
        opt_tensors["rng.cuda"] = torch.cuda.get_rng_state()
    save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
    atomic_write_json(tmp / "state.json", {
        "step": step, "model_config": model.cfg.to_dict(), "train_config": train_config,
        "optimizer": opt_meta, "scheduler": scheduler.state_dict(), "data": data_state})
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_bytes(ckdir / "latest", name.encode())
    pinned_names = {f"step-{int(s):07d}" for s in pinned}
    old = sorted(p for p in ckdir.glob("step-*") if p.is_dir() and p.name not in pinned_names)
    for p in old[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from a run folder, a checkpoints folder, or the folder itself."""
    p = Path(path)
    for cand in (p, p / "checkpoints"):
        if (cand / "state.json").exists():
            return cand
        if (cand / "latest").exists():
            return cand / (cand / "latest").read_text().strip()
    raise FileNotFoundError(f"no checkpoint at {p} (expected state.json or checkpoints/latest)")


def load_state(path: str | Path) -> tuple[Path, dict]:
    ck = resolve_checkpoint(path)
    return ck, json.loads((ck / "state.json").read_text())


def load_policy(path: str | Path, device: str | torch.device = "cpu") -> tuple[ClickPolicy, dict]:
    """Rebuild the model from the config saved in the checkpoint and load its weights."""
    ck, state = load_state(path)
    model = ClickPolicy(PolicyConfig.from_dict(state["model_config"]))
    model.load_state_dict(load_file(str(ck / "model.safetensors")))
    return model.to(device).eval(), state


def init_weights(model: ClickPolicy, path: str | Path) -> int:
    """Load another run's weights into ``model`` (same model config); returns that run's step."""
    ck, state = load_state(path)
    theirs = PolicyConfig.from_dict(state["model_config"])
    if theirs != model.cfg:
        diff = sorted(k for k, v in theirs.to_dict().items() if model.cfg.to_dict().get(k) != v)
        raise ValueError(f"model.init_from {path}: its model config differs in {', '.join(diff)}")
    model.load_state_dict(load_file(str(ck / "model.safetensors")))
    return int(state["step"])


def restore_training(ck: Path, state: dict, model, optimizer, scheduler) -> None:
    model.load_state_dict(load_file(str(ck / "model.safetensors")))
    tensors = load_file(str(ck / "optimizer.safetensors"))
    optimizer.load_state_dict(_unflatten_optimizer(tensors, state["optimizer"]))
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
