"""What the studies share: their presets at each scale, the resumable unit runner, training and
dataset units, provenance, the statistics (bootstrap, Wilson) and report writing.

A study writes into one folder:

    <out>/study.json            the resolved study settings (a rerun with other settings refuses)
    <out>/data/...              datasets (annobc generate's format)
    <out>/runs/<run>/           training runs (annobc train's format: checkpoints, metrics.jsonl)
    <out>/units/<unit>.json     one finished unit of work each (a dataset, a training run, an
                                evaluation), written atomically: its done-marker and its result
    <out>/results.json          every figure of the report, with provenance
    <out>/report.md, *.png      the report

Killed and rerun, a study reuses every unit whose JSON exists (a training run killed midway resumes
from its latest checkpoint) and recomputes only the rest.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from annobc.data.store import atomic_write_bytes, atomic_write_json
from annobc.tasks.registry import BUILTIN

SCALES = ("micro", "paper")
STUDIES = ("emergence", "scaling", "transfer", "probes", "real", "variants")

# -- presets -----------------------------------------------------------------------------------------
# The CPU preset's model options (the shipped cpu_demo config) and the GPU one's (gpu_paper).
CPU_MODEL = {"head": "cells", "cell_history": 8, "target_head": True}
GPU_MODEL = {"head": "xy", "pretrained": ""}
PAPER_SCREEN = [448, 358]

_COMMON_MICRO = dict(
    tasks="all", params=[], screen=[160, 128], seed=0, data_workers=2,
    base_config="cpu_demo", train_overrides=["run.eval_windows=16"], device="cpu", launcher="inline",
    tf_batch=32, closed_loop_batch=64, temperature=0.4,
    threads=0,  # torch CPU threads of the evaluations (0: torch's default); training: run.threads
)
_COMMON_PAPER = dict(
    tasks="all", params=[], screen=PAPER_SCREEN, seed=0, data_workers=32,
    base_config="gpu_paper", train_overrides=["run.eval_windows=64"], device="cuda",
    launcher="torchrun:8",
    tf_batch=64, closed_loop_batch=256, temperature=0.4, threads=0,
)

PRESETS: dict[str, dict[str, dict]] = {
    "emergence": {
        # One tiny-preset run of 3,000 steps (the CPU demo's length), 14 log-spaced checkpoints
        # all scored teacher-forced, 5 of them closed loop (the last, which the mistake comparison
        # rests on, with more episodes); about 45-60 min on 2 dedicated cores (docs/study_sections.md).
        "micro": dict(
            _COMMON_MICRO, episodes_per_task=600, model_preset="tiny", model_overrides=CPU_MODEL,
            train_steps=3000, first_step=10, checkpoints=14, tf_windows=128,
            closed_loop_checkpoints=5, closed_loop_episodes=12, final_closed_loop_episodes=30,
            closed_loop_max_steps=300, recovery_seeds=20, recovery_horizon=8,
            recovery_temperature=0.0, bootstrap=500, reach_fraction=0.9, min_windows=5,
            learned_floor=0.05),
        # The published model: vit-b, 100K steps, 16 log-spaced checkpoints.
        "paper": dict(
            _COMMON_PAPER, episodes_per_task=10000, model_preset="vit-b", model_overrides=GPU_MODEL,
            train_steps=100000, first_step=100, checkpoints=16, tf_windows=1024,
            closed_loop_checkpoints=6, closed_loop_episodes=100, final_closed_loop_episodes=100,
            closed_loop_max_steps=600,
            recovery_seeds=100, recovery_horizon=8, recovery_temperature=0.0,
            bootstrap=1000, reach_fraction=0.9, min_windows=20, learned_floor=0.05),
    },
    "scaling": {
        # Two sizes (a smaller CNN and the tiny CPU preset, both with the cpu_demo model options)
        # by four dataset sizes (6 to 50 train episodes per task: 5 epochs down to 0.6 in 1,500
        # steps), 8 runs of 1,500 steps; about 60-65 min on 2 dedicated cores (docs).
        "micro": dict(
            _COMMON_MICRO,
            models=[{"name": "micro-s", "preset": "tiny",
                     "overrides": {**CPU_MODEL, "cnn_channels": [16, 32, 32], "d_model": 48,
                                   "n_layers": 2, "n_heads": 4}},
                    {"name": "tiny", "preset": "tiny", "overrides": CPU_MODEL}],
            episodes=[6, 12, 25, 50], val_episodes_per_task=25, train_steps=1500,
            tf_windows=128, threshold="auto", placement_tolerance=0.05),
        # The paper's three sizes (5M, 28M, 95M) by four dataset sizes, 100K steps each.
        "paper": dict(
            _COMMON_PAPER,
            models=[{"name": "small", "preset": "small", "overrides": GPU_MODEL},
                    {"name": "vit-s", "preset": "vit-s", "overrides": GPU_MODEL},
                    {"name": "vit-b", "preset": "vit-b", "overrides": GPU_MODEL}],
            episodes=[300, 1000, 3000, 10000], val_episodes_per_task=200, train_steps=100000,
            tf_windows=1024, threshold="auto", placement_tolerance=0.05),
    },
    "transfer": {
        # Three held-out tasks (placement, hierarchical, decision), one pretraining run shared by
        # them on the other six tasks (2,000 steps: the CPU demo's 3,000 steps for nine tasks, per
        # task), N = 10, 30, 100 episodes, three arms (two fine-tuning recipes and scratch) of 300
        # steps each. At 0.35 s a step (the CPU preset on 2 cores): pretraining 2,000 steps = 11.7
        # min; 3 tasks x 3 N x 3 arms = 27 runs x 300 steps = 8,100 steps = 47.3 min;
        # teacher-forced 30 models (27 + 3 zero-shot) x 256 windows x 0.03 s = 3.8 min; closed loop
        # 30 x 20 episodes x at most 300 clicks x 6 ms = at most 18 min (about 6 where episodes end
        # near the annotator's 75-100 clicks); generation about 2 min: about 70 min, at most 83
        # (`--plan` prints the arithmetic: cpu_estimate).
        "micro": dict(
            _COMMON_MICRO, tasks=list(BUILTIN),
            held_out=["neuron_tracking", "road_network_construction", "3d_exploration_classification"],
            pretraining="shared", pretrain_episodes_per_task=600, pretrain_steps=2000,
            model_preset="tiny", model_overrides=CPU_MODEL,
            episodes=[10, 30, 100], val_episodes_per_task=25, finetune_steps=300,
            # as published: LR 3e-5 for the head and the temporal model, the backbone at 0.01x;
            # full: every part at the pretraining run's settings (null: the base config's)
            finetune=[{"name": "published", "lr": 3e-5, "backbone_lr_mult": 0.01},
                      {"name": "full", "lr": None, "backbone_lr_mult": None}],
            tf_windows=256, closed_loop_episodes=20, closed_loop_max_steps=300, bootstrap=1000),
        # The paper's leave-one-out: each of the nine tasks held out in turn, pretrained (vit-b,
        # 100K steps, as published) on the other eight; fine-tuning runs of 10K steps (the
        # fine-tuning length is not in the published setup as recorded in docs/study.md: this
        # project's choice) at N = 10 to 300 episodes.
        "paper": dict(
            _COMMON_PAPER, tasks=list(BUILTIN), held_out="all",
            pretraining="leave_one_out", pretrain_episodes_per_task=10000, pretrain_steps=100000,
            model_preset="vit-b", model_overrides=GPU_MODEL,
            episodes=[10, 30, 100, 300], val_episodes_per_task=200, finetune_steps=10000,
            finetune=[{"name": "published", "lr": 3e-5, "backbone_lr_mult": 0.01},
                      {"name": "full", "lr": None, "backbone_lr_mult": None}],
            tf_windows=1024, closed_loop_episodes=100, closed_loop_max_steps=600, bootstrap=1000),
    },
    "probes": {
        # Reads the emergence micro run (its data and 14 kept checkpoints; trains nothing): 7 of the
        # checkpoints and a random init, each on 3,240 val windows (all 60 val episodes per task x 6
        # random steps) and up to 4 more per episode with a mistake present (they are rare); about
        # 20-25 min on 2 dedicated cores (docs/study.md).
        "micro": dict(
            emergence_dir="runs/study/emergence-micro", probe_checkpoints=7,
            probe_episodes_per_task=60, steps_per_episode=6, mistake_steps_per_episode=4, batch=32,
            device="cpu", threads=0, seed=0, folds=5, probe_c=0.1, ridge_alpha=10.0,
            probe_max_iter=1000, bootstrap=500, reach_fraction=0.9, verdict_layer="ln_f",
            shared_margin=0.05, min_class=5),
        # The emergence paper run's 16 checkpoints (vit-b), 200 val episodes per task x 8 steps.
        "paper": dict(
            emergence_dir="runs/study/emergence-paper", probe_checkpoints=16,
            probe_episodes_per_task=200, steps_per_episode=8, mistake_steps_per_episode=4, batch=64,
            device="cuda", threads=0, seed=0, folds=5, probe_c=0.1, ridge_alpha=10.0,
            probe_max_iter=1000, bootstrap=1000, reach_fraction=0.9, verdict_layer="ln_f",
            shared_margin=0.05, min_class=10),
    },
    "real": {
        # One source (neuron: an EM-like TIFF stack and SWC skeletons, synthesised and imported; 60
        # instances, 48 train / 6 val / 6 test), one pretraining run on the nine synthetic tasks (the
        # emergence study's: 600 episodes per task, 3,000 steps), N = 6 and 24 train instances with 4
        # annotator episodes each, three arms (two fine-tuning recipes and scratch) of 800 steps.
        # At 0.35 s a step (the CPU preset on 2 cores): pretraining 3,000 steps = 17.5 min; 2 N x
        # 3 arms = 6 runs x 800 steps = 4,800 steps = 28 min; teacher-forced 7 models (6 + zero-shot)
        # x 256 windows x 0.03 s = 0.9 min; closed loop 7 x 24 episodes x at most 300 clicks x 6 ms =
        # at most 5 min (about 1 where episodes end near the annotator's 40 clicks); synthesis, import
        # and generation about 3 min: about 50 min, at most 55 (`--plan`: cpu_estimate). With
        # pretrained_run (e.g. the emergence run) the 17.5 min of pretraining go.
        "micro": dict(
            _COMMON_MICRO, tasks=list(BUILTIN), source="neuron",
            input={"neuron": {"instances": 60, "length": 16}, "tracks": {"instances": 60, "length": 16},
                   "pose": {"instances": 60, "length": 8}},
            split_seed=0, pretrained_run="", pretrain_episodes_per_task=600, pretrain_steps=3000,
            model_preset="tiny", model_overrides=CPU_MODEL,
            instances=[6, 24], episodes_per_instance=4, val_episodes=24, finetune_steps=800,
            finetune=[{"name": "published", "lr": 3e-5, "backbone_lr_mult": 0.01},
                      {"name": "full", "lr": None, "backbone_lr_mult": None}],
            tf_windows=256, closed_loop_episodes=24, closed_loop_max_steps=300, bootstrap=1000),
        # The published model (vit-b, 100K steps of pretraining on the nine tasks at 10,000 episodes
        # per task), 300 imported instances (240 train / 30 val / 30 test) of the task's default
        # length, N = 30 and 100 with 10 episodes each, arms of 10K steps (transfer's choice).
        "paper": dict(
            _COMMON_PAPER, tasks=list(BUILTIN), source="neuron",
            input={"neuron": {"instances": 300, "length": 32}, "tracks": {"instances": 300, "length": 30},
                   "pose": {"instances": 300, "length": 8}},
            split_seed=0, pretrained_run="", pretrain_episodes_per_task=10000, pretrain_steps=100000,
            model_preset="vit-b", model_overrides=GPU_MODEL,
            instances=[30, 100], episodes_per_instance=10, val_episodes=200, finetune_steps=10000,
            finetune=[{"name": "published", "lr": 3e-5, "backbone_lr_mult": 0.01},
                      {"name": "full", "lr": None, "backbone_lr_mult": None}],
            tf_windows=1024, closed_loop_episodes=100, closed_loop_max_steps=600, bootstrap=1000),
    },
    "variants": {
        # Held out: three variants, each the layout of a training variant changed along one axis of
        # its own, so that each tests one kind of novelty: `bottom` the panel side (the buttons in
        # rows under the canvas; training `left` differs from it in the side only), `high-contrast`
        # the theme (training `light` differs in the theme only), `large-font` the font scale (4x7
        # glyphs on the right-panel layouts, whose 1.4 font training shows only in the mirrored,
        # high-contrast `left-large-font`). Trained on 8 (the published count) of the 9 others
        # besides the default: `spaced` is left out, as its one distinctive property (18/4
        # buttons) is in no other variant and varies no axis the held-out ones test (an otherwise
        # arbitrary pick). Nine tasks; two runs of 2,000 steps (600 episodes per task, the same
        # scenes, in the training variants or the default one) and a fine-tune of 300 steps on 12
        # new episodes per task in the held-out variants. At 0.35 s a step (the CPU preset `tiny`
        # + cells head, batch 16 x window 8, 2 cores): training 4,000 steps = 23.3 min, fine-tune
        # 1.8 min; teacher-forced 3 arms x 3 sets x 9 tasks x 128 windows = 10,368 x 0.03 s =
        # 5.2 min; closed loop 3 x 3 x 9 tasks x 12 episodes = 972 x at most 300 clicks x 6 ms = at
        # most 29.2 min (about 10 where episodes end near the annotator's 75-100 clicks);
        # generation about 12,300 episodes, about 5 min: about 45 min, at most 65 (`--plan`:
        # cpu_estimate).
        "micro": dict(
            _COMMON_MICRO, tasks=list(BUILTIN),
            training_variants=["light", "reversed", "left", "left-light", "bottom-light", "compact",
                               "left-large-font", "bottom-compact"],
            held_out_variants=["bottom", "high-contrast", "large-font"],
            train_episodes_per_task=600, train_steps=2000, model_preset="tiny", model_overrides=CPU_MODEL,
            # as published: LR 3e-5 for the head and the temporal model, the backbone at 0.01x
            finetune={"lr": 3e-5, "backbone_lr_mult": 0.01}, finetune_episodes_per_task=12,
            finetune_steps=300, val_episodes_per_task=25, tf_windows=128, closed_loop_episodes=12,
            closed_loop_max_steps=300, bootstrap=1000),
        # The published model (vit-b, gpu_paper, 100K steps) for both runs at 10,000 episodes per
        # task; a fine-tune of 10K steps (the transfer study's length, this project's choice) on
        # 30 episodes per task of the held-out variants.
        "paper": dict(
            _COMMON_PAPER, tasks=list(BUILTIN),
            training_variants=["light", "reversed", "left", "left-light", "bottom-light", "compact",
                               "left-large-font", "bottom-compact"],
            held_out_variants=["bottom", "high-contrast", "large-font"],
            train_episodes_per_task=10000, train_steps=100000, model_preset="vit-b",
            model_overrides=GPU_MODEL, finetune={"lr": 3e-5, "backbone_lr_mult": 0.01},
            finetune_episodes_per_task=30, finetune_steps=10000, val_episodes_per_task=200,
            tf_windows=1024, closed_loop_episodes=100, closed_loop_max_steps=600, bootstrap=1000),
    },
}


class StudyError(ValueError):
    """A user error (unknown study, bad setting, a folder holding another study): one line."""


class UnitLimit(RuntimeError):
    """Raised after ``max_new_units`` units were computed: a kill at a unit boundary (tests)."""


def study_settings(name: str, scale: str, overrides: dict | None = None) -> dict:
    """The preset of study ``name`` at ``scale`` with ``overrides`` (keys must exist)."""
    if name not in PRESETS:
        raise StudyError(f"unknown study {name!r}; known: {', '.join(PRESETS)}")
    if scale not in PRESETS[name]:
        raise StudyError(f"unknown scale {scale!r}; known: {', '.join(PRESETS[name])}")
    cfg = copy.deepcopy(PRESETS[name][scale])
    for k, v in (overrides or {}).items():
        if k not in cfg:
            raise StudyError(f"unknown setting {k!r} of study {name} (known: {', '.join(sorted(cfg))})")
        cfg[k] = v
    return cfg


def parse_settings(items: list[str] | None) -> dict:
    """['train_steps=8', 'tasks=a,b'] -> {'train_steps': 8, 'tasks': 'a,b'} (YAML values)."""
    out = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise StudyError(f"--set must look like KEY=VALUE, got {item!r}")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
    return out


def flow(value) -> str:
    """A value as one-line YAML (for ``section.key=value`` overrides)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


# -- the study folder and its units ----------------------------------------------------------------------
class Study:
    """One study's folder: settings, units (each computed once), progress."""

    def __init__(self, name: str, scale: str, out: str | Path, settings: dict, progress: bool = True,
                 max_new_units: int | None = None):
        self.name, self.scale, self.out = name, scale, Path(out)
        self.cfg = settings
        self.progress = progress
        self.max_new_units = max_new_units
        self.computed: list[str] = []  # units computed by this call
        self.reused: list[str] = []  # units found finished
        self.trained: list[str] = []  # training runs this call trained (or resumed)

    def open(self) -> "Study":
        """Create the folder, or check that the one there holds this study with these settings."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "units").mkdir(exist_ok=True)
        path = self.out / "study.json"
        want = json.loads(json.dumps({"study": self.name, "scale": self.scale, "settings": self.cfg}))
        if path.exists():
            have = json.loads(path.read_text())
            if have != want:
                a, b = have.get("settings", {}), want["settings"]
                diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                raise StudyError(f"{self.out} holds a study run with other settings "
                                 f"({', '.join(diff) or 'study, scale'}); use another --out or the "
                                 f"same settings to continue it")
        else:
            atomic_write_json(path, want)
        # The code this process runs is the code at its start (modules are imported then), so a
        # unit records that, not the checkout's state when the report is written.
        self.code = git_state()
        if self.cfg.get("threads"):
            import torch

            torch.set_num_threads(int(self.cfg["threads"]))
        return self

    def unit_path(self, unit: str) -> Path:
        return self.out / "units" / f"{unit}.json"

    def done(self, unit: str) -> bool:
        return self.unit_path(unit).exists()

    def unit(self, unit: str, fn: Callable[[], dict]) -> dict:
        """The result of ``unit``: read back if finished, else computed by ``fn`` and stored."""
        path = self.unit_path(unit)
        if path.exists():
            self.reused.append(unit)
            return json.loads(path.read_text())
        if self.max_new_units is not None and len(self.computed) >= self.max_new_units:
            raise UnitLimit(f"stopped before unit {unit} ({self.max_new_units} units computed)")
        t0 = time.perf_counter()
        result = fn()
        result = {**result, "unit": unit, "seconds": round(time.perf_counter() - t0, 2),
                  "code": getattr(self, "code", None)}
        atomic_write_json(path, json.loads(json.dumps(result, default=_jsonable)))
        self.computed.append(unit)
        return json.loads(path.read_text())

    def bar(self, total: int, desc: str, unit: str = "unit"):
        from tqdm import tqdm

        return tqdm(total=total, desc=f"{self.name} {desc}", unit=unit, file=sys.stderr,
                    disable=not self.progress, dynamic_ncols=True, leave=False)


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def atomic_save_npz(path: Path, **arrays) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        np.savez_compressed(f, **arrays)
    os.replace(tmp, path)


# -- datasets and training runs --------------------------------------------------------------------------
def dataset_unit(study: Study, unit: str, root: Path, plan) -> dict:
    """Generate (or finish generating) the dataset ``plan`` in ``root``, once."""
    from annobc.data import generate

    def fn():
        card = generate(root, plan, workers=study.cfg.get("data_workers", 1), progress=study.progress)
        return {"path": str(root), "episodes": card["episodes"], "steps": card["steps"],
                "card_sha256": card_sha256(root)}
    return study.unit(unit, fn)


def recipe_overrides(recipe: dict | None, init_from: Path | None) -> list[str]:
    """A fine-tuning recipe's overrides (None: scratch, the base config's optimizer, random init).
    A recipe value of None keeps the base config's (the pretraining run's) setting."""
    out = [f"model.init_from={init_from}"] if init_from is not None else []
    for key in ("lr", "backbone_lr_mult"):
        if recipe is not None and recipe.get(key) is not None:
            out.append(f"optim.{key}={flow(float(recipe[key]))}")  # YAML reads 3e-05 as a string
    return out


def trained_optim(c: dict, overrides: list[str], pretrained: bool) -> dict:
    """A run's optimizer as trained (a recipe's values resolved against the base config)."""
    from annobc.train.config import load_config

    o = load_config(c["base_config"], overrides).optim
    return {"init": "pretrained" if pretrained else "random", "lr": o.lr,
            "backbone_lr_mult": o.backbone_lr_mult, "backbone_lr": o.lr * o.backbone_lr_mult,
            "steps": o.max_steps, "warmup_steps": o.warmup_steps, "batch": o.batch_size}


def card_sha256(root: Path) -> str:
    return hashlib.sha256((Path(root) / "dataset.json").read_bytes()).hexdigest()


def train_overrides(study: Study, run: str, data: Path, preset: str, model_overrides: dict,
                    steps: int, keep_steps: list[int] = ()) -> list[str]:
    """The ``section.key=value`` overrides of one training run (on the study's base config)."""
    c = study.cfg
    out = [f"data.path={data}", f"run.out_dir={study.out / 'runs'}", f"run.name={run}",
           f"run.seed={c['seed']}", f"run.device={'cuda' if c['device'] == 'cuda' else 'cpu'}",
           f"model.preset={preset}", f"model.overrides={flow(dict(model_overrides))}",
           f"optim.max_steps={steps}", f"run.eval_every={steps + 1}",
           f"run.keep_steps={flow([int(s) for s in keep_steps])}"]
    return out + list(c.get("train_overrides", []))


def train_command(study: Study, overrides: list[str], resume: bool) -> list[str]:
    """The command line of a training run under ``launcher: torchrun:N``."""
    n = int(study.cfg["launcher"].split(":", 1)[1] or 1)
    return ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
             str(n), "-m", "annobc.train", study.cfg["base_config"], *overrides]
            + (["--resume"] if resume else []))


def train_unit(study: Study, run: str, overrides: list[str]) -> dict:
    """Train run ``run`` once: reused when finished, resumed from its latest checkpoint when a kill
    interrupted it. Inline (in this process) or through torchrun (``launcher``)."""
    from annobc.train.config import load_config

    def fn():
        cfg = load_config(study.cfg["base_config"], overrides)
        resume = (cfg.run_dir / "checkpoints" / "latest").exists()
        summary_path = cfg.run_dir / "summary.json"
        finished = resume and summary_path.exists() and (
            json.loads(summary_path.read_text()).get("step") == cfg.optim.max_steps
            and (cfg.run_dir / "checkpoints" / "latest").read_text().strip()
            == f"step-{cfg.optim.max_steps:07d}")
        if finished:  # killed after training, before its done-marker: nothing to redo
            summary = json.loads(summary_path.read_text())
        elif study.cfg["launcher"] == "inline":
            study.trained.append(run)
            from annobc.train.train import train

            summary = train(cfg, resume=resume, progress=study.progress)
        else:
            study.trained.append(run)
            subprocess.run(train_command(study, overrides, resume), check=True)
            summary = json.loads((cfg.run_dir / "summary.json").read_text())
        kept = sorted(int(p.name.split("-")[1]) for p in (cfg.run_dir / "checkpoints").glob("step-*")
                      if (p / "state.json").exists())
        return {"run": run, "run_dir": str(cfg.run_dir), "step": summary["step"],
                "minutes": summary["minutes"], "params": summary["params"],
                "resumed": resume and not finished, "found_finished": finished,
                "checkpoint_steps": kept, "overrides": overrides}
    return study.unit(f"train-{run}", fn)


def checkpoint_dir(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:07d}"


def log_steps(first: int, last: int, n: int) -> list[int]:
    """About ``n`` log-spaced steps from ``first`` to ``last`` (distinct integers; fewer where the
    range is too short)."""
    first = max(1, min(int(first), int(last)))
    steps = np.unique(np.round(np.geomspace(first, last, max(2, n))).astype(int))
    return [int(s) for s in steps]


def spread(items: list, k: int) -> list:
    """``k`` items evenly spread over ``items`` (first and last included)."""
    if k >= len(items):
        return list(items)
    idx = np.unique(np.round(np.linspace(0, len(items) - 1, max(1, k))).astype(int))
    return [items[i] for i in idx]


def screen_and_variant(store) -> tuple[tuple[int, int], str | None, str]:
    """A dataset's screen, theme and the GUI variant its closed-loop episodes are shown in."""
    from annobc.gui import resolve_variants

    names = resolve_variants(store.card.get("ui_variant") or "default")
    return tuple(store.card["screen"]), store.card.get("theme"), names[0] if len(names) == 1 else "default"


def test_seeds(store, n: int) -> list[int]:
    start = (store.card["seed_ranges"].get("test") or [20_000_000])[0]
    return list(range(start, start + n))


# -- provenance ----------------------------------------------------------------------------------------
def git_state() -> dict:
    """{"commit", "dirty"} of the checkout this package runs from ("" and None outside git)."""
    try:
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10,
                                    cwd=Path(__file__).parent).stdout.strip())
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        dirty, commit = None, ""
    return {"commit": commit, "dirty": dirty}


def unit_code(study: Study) -> list[dict]:
    """The code the study's finished units were computed with: one entry per (commit, dirty), with
    how many units; units from before units recorded it count under commit null."""
    counts: dict = {}
    for path in sorted((study.out / "units").glob("*.json")):
        code = json.loads(path.read_text()).get("code") or {}
        key = (code.get("commit"), code.get("dirty"))
        counts[key] = counts.get(key, 0) + 1
    return [{"commit": c, "dirty": d, "units": n} for (c, d), n in counts.items()]


def provenance(study: Study, **extra) -> dict:
    from annobc.data.generate import code_version

    now = git_state()
    return {"study": study.name, "scale": study.scale, "code_version": code_version(),
            "git_commit": now["commit"], "git_dirty": now["dirty"], "unit_code": unit_code(study),
            "settings": study.cfg, **extra}


def code_text(prov: dict) -> str:
    """The report's code line: the version, and the commit(s) its units were computed at."""
    def one(commit, dirty) -> str:
        return f"{(commit or '?')[:12]}{', uncommitted changes' if dirty else ''}"

    units = prov.get("unit_code") or []
    if not units:
        return f"Code {prov['code_version']} (commit {one(prov['git_commit'], prov['git_dirty'])})"
    parts = [f"{u['units']} at {one(u['commit'], u['dirty']) if u['commit'] else 'a commit not recorded'}"
             for u in units]
    return (f"Code {prov['code_version']}; units computed: {'; '.join(parts)}; report written at "
            f"commit {one(prov['git_commit'], prov['git_dirty'])}")


# -- statistics ----------------------------------------------------------------------------------------
def wilson(successes: int, n: int) -> list[float]:
    """95% Wilson interval of a proportion (annobc.eval's), as a list."""
    from annobc.eval.closed_loop import wilson_interval

    return list(wilson_interval(int(successes), int(n)))


def proportion(successes: int, n: int) -> dict:
    """A proportion with its count and 95% Wilson interval (rate None when n == 0)."""
    return {"rate": successes / n if n else None, "k": int(successes), "n": int(n),
            "ci95": wilson(min(successes, n), n) if n else None}


def bootstrap_weights(n: int, reps: int, rng: np.random.Generator) -> np.ndarray:
    """(reps, n) resampling counts: each row a bootstrap resample of n items (with replacement)."""
    if n == 0:
        return np.zeros((reps, 0))
    idx = rng.integers(0, n, size=(reps, n))
    return np.stack([np.bincount(r, minlength=n) for r in idx]).astype(np.float64)


def percentile_ci(samples: np.ndarray) -> list[float] | None:
    s = np.asarray(samples, float)
    s = s[np.isfinite(s)]
    if not len(s):
        return None
    return [float(np.percentile(s, 2.5)), float(np.percentile(s, 97.5))]


def reach_step(values: np.ndarray, steps: list[int], fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The step at which each curve (rows of ``values``, (..., n_checkpoints)) first reaches
    ``fraction`` of its final value, interpolated linearly in log(step) between checkpoints; and
    whether that is the first checkpoint (the true step may be earlier: censored)."""
    v = np.asarray(values, float)
    logs = np.log(np.asarray(steps, float))
    thr = fraction * v[..., -1:]
    reached = v >= thr - 1e-12
    first = np.argmax(reached, axis=-1)  # the last checkpoint always reaches it
    prev = np.maximum(first - 1, 0)
    v1 = np.take_along_axis(v, first[..., None], -1)[..., 0]
    v0 = np.take_along_axis(v, prev[..., None], -1)[..., 0]
    t = thr[..., 0]
    frac = np.where(v1 > v0, (t - v0) / np.where(v1 > v0, v1 - v0, 1.0), 1.0)
    log_t = logs[prev] + np.clip(frac, 0, 1) * (logs[first] - logs[prev])
    out = np.where(first == 0, float(steps[0]), np.exp(log_t))
    return out, first == 0


# -- throughput and cost estimates -------------------------------------------------------------------------
THROUGHPUT = Path(__file__).resolve().parents[3] / "benchmarks" / "results" / "train_throughput.json"
# Assumed sustained bf16 training throughput of one H100/H200-class GPU (about 30% of its dense
# peak), for the FLOPs-based estimate where no measured GPU step time exists.
GPU_EFFECTIVE_TFLOPS = 300.0


def measured_step_seconds(preset_name: str, device: str = "cpu") -> dict | None:
    """A measured training-step time of a model preset from benchmarks/results/train_throughput.json
    (when present), per window: {"seconds_per_window", "source"}."""
    if not THROUGHPUT.exists():
        return None
    try:
        res = json.loads(THROUGHPUT.read_text()).get("results", {})
    except ValueError:
        return None
    for key in (device, "cuda" if device == "cuda" else "cpu"):
        entry = res.get(key, {}).get(preset_name) if isinstance(res.get(key), dict) else None
        if entry and entry.get("step_s_median") and entry.get("windows_per_step"):
            return {"seconds_per_window": entry["step_s_median"] / entry["windows_per_step"],
                    "window": entry.get("window"), "source": f"{THROUGHPUT.name}:{key}.{preset_name}"}
    return None


def train_flops_per_step(pcfg, batch: int) -> float:
    """Training FLOPs of one optimizer step: the forward pass over one window counted by torch's
    FlopCounterMode on the meta device (no memory, no compute), x 3 (forward and backward), x the
    windows of the batch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from annobc.models import ClickPolicy

    k, h, w = pcfg.window, pcfg.screen_h, pcfg.screen_w
    with torch.device("meta"):
        model = ClickPolicy(pcfg)
        window = {"frames": torch.zeros(1, k, h, w, 3, dtype=torch.uint8),
                  "prev_xy": torch.zeros(1, k, 2, dtype=torch.long),
                  "bos": torch.zeros(1, k, dtype=torch.bool), "valid": torch.ones(1, k, dtype=torch.bool)}
        counter = FlopCounterMode(display=False)
        with counter:
            model(window)
    return 3.0 * counter.get_total_flops() * batch


LOADER = THROUGHPUT.with_name("loader_throughput.json")


def loader_seconds_per_step(pcfg, batch: int, workers: int) -> float | None:
    """Seconds the data loader needs to render one step's frames (batch x window), from the
    measured single-process frames/s of benchmarks/results/loader_throughput.json scaled by the
    screen's pixel count, spread over ``workers`` processes; None without the benchmark."""
    if not LOADER.exists():
        return None
    try:
        d = json.loads(LOADER.read_text())
        fps = d["loader"]["0_workers"]["frames_per_s_median"]
        w, h = d["screen"]
    except (ValueError, KeyError, TypeError):
        return None
    fps *= (w * h) / (pcfg.screen_w * pcfg.screen_h)
    return batch * pcfg.window / (fps * max(1, workers))


def gpu_hours(pcfg, batch: int, steps: int, preset_name: str = "", workers: int = 1) -> dict:
    """Estimated GPU-hours of a training run (an estimate, never a measurement): from a measured
    GPU step time where benchmarks/results/train_throughput.json holds one for the preset at this
    window, else the training FLOPs over an assumed sustained throughput (GPU_EFFECTIVE_TFLOPS),
    but no faster than the measured loader can render the frames (``workers`` per GPU)."""
    flops = train_flops_per_step(pcfg, batch)
    measured = measured_step_seconds(preset_name, "cuda") if preset_name else None
    loader = loader_seconds_per_step(pcfg, batch, workers)
    if measured and measured["source"].endswith(f"cuda.{preset_name}") and \
            measured.get("window") in (None, pcfg.window):
        seconds = measured["seconds_per_window"] * batch
        basis = f"measured GPU step time ({measured['source']})"
    else:
        seconds = flops / (GPU_EFFECTIVE_TFLOPS * 1e12)
        basis = (f"FLOPs (torch FlopCounterMode, x3 for the backward pass) at "
                 f"{GPU_EFFECTIVE_TFLOPS:.0f} TFLOP/s sustained; no measured GPU step time")
        if loader is not None and loader > seconds:
            seconds = loader
            basis += f"; bound by the loader ({LOADER.name}, {workers} workers, scaled by pixels)"
    return {"flops_per_step": flops, "seconds_per_step": seconds, "loader_seconds_per_step": loader,
            "gpu_hours": seconds * steps / 3600, "basis": basis}


# Costs of the CPU preset (tiny + cells head, 16 windows of 8 frames, 2 cores) for the micro plans'
# wall-time estimates: a training step (benchmarks/results/train_throughput.json: 0.348 s median), a
# teacher-forced window and a closed-loop click (the emergence study's timings, docs/study.md).
CPU_STEP_SECONDS = 0.35
CPU_TF_WINDOW_SECONDS = 0.03
CPU_CLOSED_LOOP_CLICK_SECONDS = 0.006


def cpu_estimate(steps: dict[str, int], load: dict, scored: int) -> dict:
    """The micro budget's arithmetic: minutes on 2 cores at the CPU preset's costs, per group of
    training ``steps`` and for the evaluation ``load`` (meaningful for that preset only; the
    closed-loop figure assumes every episode runs to its click cap)."""
    minutes = {k: n * CPU_STEP_SECONDS / 60 for k, n in steps.items()}
    minutes["teacher-forced"] = load["tf_windows"] * CPU_TF_WINDOW_SECONDS / 60
    minutes["closed loop, at most"] = load["closed_loop_frames"] * CPU_CLOSED_LOOP_CLICK_SECONDS / 60
    return {"minutes": minutes, "total_minutes_at_most": sum(minutes.values()),
            "models_scored": scored,
            "basis": f"{CPU_STEP_SECONDS} s a training step (tiny + cells head, 16 windows of 8 "
                     f"frames), {CPU_TF_WINDOW_SECONDS} s a teacher-forced window, "
                     f"{CPU_CLOSED_LOOP_CLICK_SECONDS} s a closed-loop click, on 2 cores; "
                     "dataset generation (a minute or two) not included"}


# -- report writing ------------------------------------------------------------------------------------
def pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def num(v, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def intf(v) -> str:
    return "-" if v is None else str(int(round(v)))


def ci_pct(ci) -> str:
    return "-" if not ci else f"[{100 * ci[0]:.1f}%, {100 * ci[1]:.1f}%]"


def ci_int(ci) -> str:
    return "-" if not ci else f"[{int(round(ci[0]))}, {int(round(ci[1]))}]"


def table(headers: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def write_outputs(out: Path, results: dict, report_lines: list[str]) -> None:
    atomic_write_json(out / "results.json", json.loads(json.dumps(results, default=_jsonable)))
    atomic_write_bytes(out / "report.md", ("\n".join(report_lines) + "\n").encode())


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def tasks_of(spec) -> tuple[str, ...]:
    from annobc.data import resolve_tasks

    return resolve_tasks(spec)
