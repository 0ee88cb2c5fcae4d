"""Task plugins: the example package under examples/ registered through the ``annobc.tasks``
entry-point group (a path entry point: a ``.dist-info`` folder on PYTHONPATH, as an installed
wheel leaves), seen by the CLI, Gymnasium, datasets and spawned DataLoader workers, and passing
the same contract tests as the built-in tasks. Each check runs in a subprocess, so this
process's registry stays the built-in one."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "examples" / "annobc-example-task"


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    info = site / "annobc_example_task-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: annobc-example-task\nVersion: 0.1.0\n")
    ep = PLUGIN / "pyproject.toml"
    line = next(ln for ln in ep.read_text().splitlines() if ln.startswith("blink_marking"))
    name, value = (part.strip().strip('"') for part in line.split("="))  # TOML -> entry_points.txt
    (info / "entry_points.txt").write_text(f"[annobc.tasks]\n{name} = {value}\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(PLUGIN / "src"),
                                         env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run(env, *args, timeout=600) -> subprocess.CompletedProcess:
    r = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def test_the_plugin_is_a_task_everywhere(plugin_env, tmp_path):
    code = f"""
import gymnasium as gym, numpy as np, torch
import annobc
from annobc.tasks import task_ids, task_origin
from annobc.data import Plan, generate
from annobc.data.windows import WindowDataset
assert "blink_marking" in task_ids() and task_origin("blink_marking") == "annobc-example-task"
env = gym.make("annobc/blink_marking-v0")
obs, info = env.reset(seed=0)
assert obs.shape == (128, 160, 3)
generate({str(tmp_path / 'data')!r}, Plan(tasks=["blink_marking", "colored_dot_tracking"],
         episodes_per_task=6), workers=1)
ds = WindowDataset({str(tmp_path / 'data')!r}, "train", window=2)
loader = torch.utils.data.DataLoader(ds, batch_size=4, num_workers=1,
                                     multiprocessing_context="spawn")
batch = next(iter(loader))
assert batch["frames"].shape[1:] == (2, 128, 160, 3)
assert ds.store.tasks == ["blink_marking", "colored_dot_tracking"]
print("ok")
"""
    assert run(plugin_env, sys.executable, "-c", code).stdout.strip().endswith("ok")
    out = run(plugin_env, sys.executable, "-m", "annobc.cli.main", "tasks", "--json").stdout
    rows = {r["task"]: r for r in json.loads(out)}
    assert "blink_marking" in rows
    run(plugin_env, sys.executable, "-m", "annobc.cli.main", "stats", "blink_marking",
        "--episodes", "5")
    run(plugin_env, sys.executable, "-m", "annobc.cli.main", "play", "blink_marking", "--seed", "0",
        "--out", str(tmp_path / "ep.gif"))
    assert (tmp_path / "ep.gif").stat().st_size > 0


def test_check_task_runs_the_contract_on_the_plugin(plugin_env):
    out = run(plugin_env, sys.executable, "-m", "annobc.cli.main", "check-task", "blink_marking",
              "--seeds", "20", "--json").stdout
    r = json.loads(out)
    assert r["passed"] and len(r["checks"]) >= 12


def test_the_plugin_passes_the_contract_tests_of_the_nine(plugin_env):
    run(plugin_env, sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider",
        "tests/tasks/test_task_contract.py", "tests/tasks/test_expert_contract.py",
        "tests/env/test_envs.py", "-k", "blink_marking")


def test_register_at_run_time_registers_the_gymnasium_id(plugin_env):
    env = {k: v for k, v in plugin_env.items()}
    env["PYTHONPATH"] = str(PLUGIN / "src")  # importable, but no entry point
    code = """
import gymnasium as gym
import annobc
from annobc.tasks import register, task_ids
assert "blink_marking" not in task_ids()
from annobc_example_task import BlinkMarking
assert register(BlinkMarking) == "blink_marking" and register(BlinkMarking) == "blink_marking"
gym.make("annobc/blink_marking-v0").reset(seed=1)
print("ok")
"""
    assert run(env, sys.executable, "-c", code).stdout.strip().endswith("ok")


def test_a_plugin_colliding_with_a_task_id_is_one_line(plugin_env, tmp_path):
    env = dict(plugin_env)
    info = tmp_path / "clash-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: clash\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[annobc.tasks]\nneuron_tracking = clash:Task\n")
    env["PYTHONPATH"] = str(tmp_path)
    r = subprocess.run([sys.executable, "-c", "import annobc"], env=env, cwd=ROOT,
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "collides with the registered task 'neuron_tracking'" in r.stderr.strip().splitlines()[-1]
