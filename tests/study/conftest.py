"""Tiny settings for the studies: two tasks, a handful of episodes, a few steps, a tiny model, one
thread (the machine's 2 cores are shared)."""

import json
import re
from pathlib import Path

import pytest

TASKS = "colored_dot_tracking,3d_exploration_classification"
TINY = {"cnn_channels": [4, 8, 8], "d_model": 16, "n_layers": 1, "n_heads": 2, "head": "cells",
        "cell_history": 2, "target_head": True}
TRAIN = ["data.window=2", "optim.batch_size=4", "optim.warmup_steps=2", "data.workers=0",
         "run.eval_windows=4", "run.log_every=1", "run.threads=1"]


EMERGENCE = dict(tasks=TASKS, episodes_per_task=5, data_workers=1, model_overrides=TINY,
                 train_steps=8, first_step=1, checkpoints=5, tf_windows=16, tf_batch=8,
                 closed_loop_checkpoints=2, closed_loop_episodes=2, final_closed_loop_episodes=3,
                 closed_loop_max_steps=12, recovery_seeds=2, bootstrap=50, min_windows=1, threads=1,
                 train_overrides=TRAIN)


@pytest.fixture
def emergence_settings():
    return dict(EMERGENCE)


@pytest.fixture
def scaling_settings():
    return dict(tasks=TASKS, data_workers=1, tf_windows=16, tf_batch=8, threads=1,
                models=[{"name": "a", "preset": "tiny", "overrides": TINY},
                        {"name": "b", "preset": "tiny",
                         "overrides": {**TINY, "cnn_channels": [8, 8, 8], "d_model": 32}}],
                episodes=[2, 4], val_episodes_per_task=2, train_steps=4, train_overrides=TRAIN)


def killed_then_rerun(name: str, out: Path, settings: dict, units: int) -> tuple:
    """Run study ``name`` until it stops after ``units`` new units (as a kill would), then again to
    the end: the folder, the units finished at the kill, the modification times then of its trained
    weights and of its done-markers, and the rerun's results."""
    from annobc.study import UnitLimit, run_study

    with pytest.raises(UnitLimit):
        run_study(name, "micro", out, settings, progress=False, max_new_units=units)
    first = {p.stem for p in (out / "units").glob("*.json")}
    weights = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("model.safetensors")}
    marks = {p: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")}
    return out, first, weights, marks, run_study(name, "micro", out, settings, progress=False)


# A number with its sign where a minus stands before it (a difference, "-6.2%"), else unsigned.
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?%?(?!\w)")


def leaves(obj):
    if isinstance(obj, dict):
        for v in obj.values():
            yield from leaves(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from leaves(v)
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        yield obj


def renderings(results: dict) -> set[str]:
    """Every way the report may print a number of results.json."""
    out = set()
    for v in leaves(results):
        out |= {str(v)} if isinstance(v, int) else {f"{100 * v:.1f}%", f"{v:.3f}", f"{v:.1f}"}
    return out


def table_numbers(report: str) -> list[str]:
    """The numbers in the body rows of the report's tables."""
    nums = []
    lines = report.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("|") or line.startswith("|---"):
            continue
        if i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            continue  # a header row
        nums += NUMBER.findall(line)
    return nums


def check_report_figures(out: Path) -> int:
    results = json.loads((out / "results.json").read_text())
    known = renderings(results)
    nums = table_numbers((out / "report.md").read_text())
    missing = [n for n in nums if n not in known]
    assert not missing, f"report figures not in results.json: {missing[:20]}"
    return len(nums)
