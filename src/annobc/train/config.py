"""Training configuration: a YAML config (a shipped one by name, e.g. ``cpu_demo``, or a path) plus
``section.key=value`` overrides. The shipped configs live in the package (``annobc/configs/``), so
an installed wheel has them.

An unknown key or a value of the wrong type fails at start with one line naming it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from annobc.learning.loss import LossConfig
from annobc.models.config import PRESETS, PolicyConfig


@dataclass
class ModelSection:
    preset: str = "tiny"
    overrides: dict = field(default_factory=dict)  # any PolicyConfig field, e.g. {head: heatmap}
    # A run folder or checkpoint whose weights start this run (fine-tuning, e.g. on a dataset grown
    # by takeover episodes); its model config must be this run's. Not with --resume.
    init_from: str = ""


@dataclass
class DataSection:
    path: str = "runs/data"
    window: int = 8
    tasks: str = "all"  # "all" or comma-separated task ids present in the dataset
    task_weights: dict = field(default_factory=dict)
    workers: int = 0  # DataLoader workers per data shard
    shards: int = 0  # data shards that make up a global batch; 0 = the world size


@dataclass
class OptimSection:
    batch_size: int = 32  # windows per optimizer micro-step, across all processes
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    backbone_lr_mult: float = 1.0
    weight_decay: float = 0.05
    warmup_steps: int = 100
    max_steps: int = 2000
    max_minutes: float = 0.0  # stop (and checkpoint) after this wall time; 0 = no limit
    grad_clip: float = 1.0
    amp: bool = True  # bfloat16 autocast on CUDA
    # bfloat16 autocast on CPU too, where the CPU computes bfloat16 natively (AVX512-BF16, AMX);
    # elsewhere it would be slower, so it is then ignored.
    cpu_bf16: bool = False


@dataclass
class RunSection:
    name: str = "run"
    out_dir: str = "runs"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    log_every: int = 10
    eval_every: int = 250
    eval_windows: int = 64  # per task
    ckpt_every: int = 250
    # Steps at which a checkpoint is also saved and never rotated away (e.g. a log-spaced schedule
    # for reading skills over training); the every-ckpt_every ones keep only the last 2.
    keep_steps: list = field(default_factory=list)
    threads: int = 0  # torch CPU threads; 0 = torch's default


@dataclass
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def run_dir(self) -> Path:
        return Path(self.run.out_dir) / self.run.name


def _coerce(name: str, value: Any, typ: Any) -> Any:
    origin = typing.get_origin(typ) or typ
    if origin is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"config {name}: expected true/false, got {value!r}")
    if origin is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError(f"config {name}: expected an integer, got {value!r}")
    if origin is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ValueError(f"config {name}: expected a number, got {value!r}")
    if origin is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError(f"config {name}: expected a string, got {value!r}")
    if origin is dict:
        if isinstance(value, dict):
            return value
        raise ValueError(f"config {name}: expected a mapping, got {value!r}")
    if origin is list:
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ValueError(f"config {name}: expected a list, got {value!r}")
    return value


def _section(cls, name: str, values: dict):
    if not isinstance(values, dict):
        raise ValueError(f"config {name}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for k in values:
        if k not in known:
            raise ValueError(f"unknown config key {name}.{k} (known: {', '.join(sorted(known))})")
    return cls(**{k: _coerce(f"{name}.{k}", v, hints[k]) for k, v in values.items()})


def from_dict(d: dict) -> TrainConfig:
    sections = {"model": ModelSection, "data": DataSection, "loss": LossConfig, "optim": OptimSection,
                "run": RunSection}
    for k in d:
        if k not in sections:
            raise ValueError(f"unknown config section {k!r} (known: {', '.join(sections)})")
    cfg = TrainConfig(**{k: _section(cls, k, d.get(k) or {}) for k, cls in sections.items()})
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    if cfg.model.preset not in PRESETS:
        raise ValueError(f"config model.preset: unknown preset {cfg.model.preset!r} "
                         f"(known: {', '.join(PRESETS)})")
    policy_fields = {f.name for f in dataclasses.fields(PolicyConfig)}
    for k in cfg.model.overrides:
        if k not in policy_fields:
            raise ValueError(f"unknown config key model.overrides.{k}")
    positive = {"data.window": cfg.data.window, "optim.batch_size": cfg.optim.batch_size,
                "optim.grad_accum": cfg.optim.grad_accum, "optim.max_steps": cfg.optim.max_steps,
                "run.log_every": cfg.run.log_every, "run.eval_every": cfg.run.eval_every,
                "run.ckpt_every": cfg.run.ckpt_every}
    for name, v in positive.items():
        if v < 1:
            raise ValueError(f"config {name}: must be >= 1, got {v}")
    if any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in cfg.run.keep_steps):
        raise ValueError(f"config run.keep_steps: expected a list of steps >= 1, "
                         f"got {cfg.run.keep_steps}")
    if cfg.optim.lr <= 0:
        raise ValueError(f"config optim.lr: must be > 0, got {cfg.optim.lr}")
    if cfg.data.workers < 0 or cfg.data.shards < 0:
        raise ValueError("config data.workers and data.shards must be >= 0")
    from annobc.tasks.registry import task_ids

    unknown = sorted(set(cfg.data.task_weights) - set(task_ids()))
    if unknown:
        raise ValueError(f"config data.task_weights: unknown task(s) {unknown}")
    if any(not isinstance(w, (int, float)) or w < 0 for w in cfg.data.task_weights.values()):
        raise ValueError(f"config data.task_weights: weights must be numbers >= 0, "
                         f"got {cfg.data.task_weights}")
    if cfg.run.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"config run.device: expected auto, cpu or cuda, got {cfg.run.device!r}")


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ValueError(f"override {text!r} must look like section.key=value")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else ""


SHIPPED_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def shipped_configs() -> list[str]:
    """The names of the configs that ship with annobc (``annobc train NAME``)."""
    return sorted(p.stem for p in SHIPPED_CONFIGS.glob("*.yaml"))


def config_path(name_or_path: str | Path) -> Path:
    """A config file: an existing path, else a shipped config by name (with or without .yaml)."""
    p = Path(name_or_path)
    if p.exists():
        return p
    shipped = SHIPPED_CONFIGS / f"{p.name.removesuffix('.yaml')}.yaml"
    if p.parent == Path(".") and shipped.exists():
        return shipped
    raise ValueError(f"config {str(name_or_path)!r} is neither a file nor a shipped config "
                     f"({', '.join(shipped_configs())})")


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    d: dict = {}
    if path:
        p = config_path(path)
        d = yaml.safe_load(p.read_text()) or {}
        if not isinstance(d, dict):
            raise ValueError(f"config file {p} must hold a mapping")
    for o in overrides:
        keys, value = parse_override(o)
        node = d
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {o!r}: {k} is not a section")
        node[keys[-1]] = value
    return from_dict(d)


def save_config(cfg: TrainConfig, path: Path) -> None:
    from annobc.data.store import atomic_write_bytes

    atomic_write_bytes(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False).encode())
