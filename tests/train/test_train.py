"""Training: exact resume after a kill, DDP (gloo, 2 processes) equals one process with the combined
batch, config errors at start."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from annobc.data import Plan, generate
from annobc.train.config import load_config

TASK = "colored_dot_tracking"
TINY = ("model.overrides={cnn_channels: [4, 8, 8], d_model: 16, n_layers: 1, n_heads: 2}")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "data"
    generate(root, Plan(tasks=(TASK,), episodes_per_task=6, shard_size=3), progress=False)
    return root


def args_for(data, out, name, *extra):
    return ["model.preset=tiny", TINY, f"data.path={data}", "data.window=2", f"run.out_dir={out}",
            f"run.name={name}", "run.device=cpu", "run.threads=1", "run.log_every=1",
            "run.eval_every=1000", "run.eval_windows=16", "optim.batch_size=4", "optim.warmup_steps=2",
            *extra]


def run_train(args, env_extra=None, wait=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env_extra or {})}
    proc = subprocess.Popen([sys.executable, "-m", "annobc.train", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if wait:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-3000:]
    return proc


def losses(run_dir: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def test_killed_and_resumed_run_logs_the_same_losses(data, tmp_path):
    steps = 24
    extra = (f"optim.max_steps={steps}", "run.ckpt_every=4", "data.workers=1")
    run_train(args_for(data, tmp_path, "straight", *extra))
    ref = losses(tmp_path / "straight")
    assert sorted(ref) == list(range(1, steps + 1))

    proc = run_train(args_for(data, tmp_path, "killed", *extra), wait=False)
    latest = tmp_path / "killed" / "checkpoints" / "latest"
    deadline = time.time() + 300
    while time.time() < deadline and not latest.exists() and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "summary.json").exists(), "finished before the kill"
    resumed_from = json.loads((tmp_path / "killed" / "checkpoints" / latest.read_text() /
                               "state.json").read_text())["step"]
    assert 0 < resumed_from < steps
    run_train(args_for(data, tmp_path, "killed", *extra) + ["--resume"])
    got = losses(tmp_path / "killed")
    assert sorted(got) == sorted(ref)
    for s in ref:
        assert got[s] == pytest.approx(ref[s], rel=1e-6, abs=1e-6), s
    a = load_file(str(tmp_path / "straight/checkpoints" / (tmp_path / "straight/checkpoints/latest").read_text() / "model.safetensors"))
    b = load_file(str(tmp_path / "killed/checkpoints" / latest.read_text() / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_ddp_two_gloo_processes_equal_one_process_with_the_combined_batch(data, tmp_path):
    extra = ("optim.max_steps=4", "run.ckpt_every=100", "data.shards=2", "optim.batch_size=4")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                "--master_port", str(29500 + os.getpid() % 1000), "-m", "annobc.train"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    p = subprocess.run(torchrun + args_for(data, tmp_path, "ddp", *extra), env=env,
                       capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode()[-3000:]
    run_train(args_for(data, tmp_path, "single", *extra))
    ck = lambda n: tmp_path / n / "checkpoints" / (tmp_path / n / "checkpoints" / "latest").read_text()
    a, b = load_file(str(ck("ddp") / "model.safetensors")), load_file(str(ck("single") / "model.safetensors"))
    assert set(a) == set(b)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4, rtol=1e-4), (k, (a[k] - b[k]).abs().max())
    la, lb = losses(tmp_path / "ddp"), losses(tmp_path / "single")
    # rank 0 logs its own half-batch loss; the weights above are the real check. Both logged 4 steps.
    assert sorted(la) == sorted(lb) == [1, 2, 3, 4]


def test_unknown_key_and_bad_value_fail_at_start_with_one_line(tmp_path):
    for override, needle in [("optim.lrr=1", "unknown config key optim.lrr"),
                             ("optim.lr=fast", "optim.lr: expected a number"),
                             ("nonsense.x=1", "unknown config section 'nonsense'"),
                             ("model.overrides={wings: 2}", "model.overrides.wings"),
                             ("data.task_weights={dots: 2}", "data.task_weights: unknown task")]:
        p = subprocess.run([sys.executable, "-m", "annobc.train", override], capture_output=True,
                           timeout=120)
        err = p.stderr.decode().strip()
        assert p.returncode == 2 and needle in err and len(err.splitlines()) == 1, err


def test_task_weights_for_tasks_the_dataset_lacks_are_ignored(data, tmp_path):
    # The demo config weights colored_dot_tracking; here the dataset has only that task, and a
    # weight for another registered task must not stop training.
    run_train(args_for(data, tmp_path, "w", "optim.max_steps=2",
                       "data.task_weights={colored_dot_tracking: 2, neuron_tracking: 3}"))
    assert losses(tmp_path / "w")


def test_shipped_configs_load_by_name():
    from annobc.train.config import shipped_configs

    assert {"cpu_demo", "gpu_paper"} <= set(shipped_configs())
    for name in shipped_configs():
        assert load_config(name).optim.max_steps > 0, name
    assert load_config("cpu_demo.yaml").model.preset == load_config("cpu_demo").model.preset


def test_an_unknown_config_is_one_line():
    with pytest.raises(ValueError, match="neither a file nor a shipped config"):
        load_config("no_such_config")


def test_print_params(capsys):
    from annobc.train.command import main

    assert main(["model.preset=tiny", "--print-params"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0.7e6 < out["params"] < 1.6e6


def test_init_from_starts_from_another_runs_weights(data, tmp_path):
    from safetensors.torch import load_file

    from annobc.learning.checkpoint import load_state

    run_train(args_for(data, tmp_path, "first", "optim.max_steps=3"))
    # A vanishing lr: the second run's weights stay what it started from.
    run_train(args_for(data, tmp_path, "second", "optim.max_steps=1", "optim.lr=1.0e-12",
                       f"model.init_from={tmp_path / 'first'}"))
    a = load_file(str(load_state(tmp_path / "first")[0] / "model.safetensors"))
    b = load_file(str(load_state(tmp_path / "second")[0] / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-8) for k in a)
    bigger = TINY.replace("d_model: 16", "d_model: 32")
    args = [a for a in args_for(data, tmp_path, "third", "optim.max_steps=1",
                                f"model.init_from={tmp_path / 'first'}") if a != TINY] + [bigger]
    p = subprocess.run([sys.executable, "-m", "annobc.train", *args], capture_output=True, timeout=300)
    err = p.stderr.decode().strip().splitlines()
    assert p.returncode == 2 and "init_from" in err[-1] and "d_model" in err[-1], err[-3:]


def test_keep_steps_are_saved_and_never_rotated_away(data, tmp_path):
    run_train(args_for(data, tmp_path, "keep", "optim.max_steps=9", "run.ckpt_every=4",
                       "run.keep_steps=[1, 2, 5]"))
    ck = tmp_path / "keep" / "checkpoints"
    kept = sorted(int(p.name.split("-")[1]) for p in ck.glob("step-*"))
    # the pinned steps, and the last two of the every-4 rotation (4 and 8 saved, then the final 9)
    assert kept == [1, 2, 5, 8, 9]
    assert (ck / "latest").read_text() == "step-0000009"
    from annobc.learning.checkpoint import load_policy

    for s in (1, 2, 5):
        _, state = load_policy(ck / f"step-{s:07d}")
        assert state["step"] == s


def test_keep_steps_must_be_a_list_of_steps():
    for value, needle in (("3", "expected a list"), ("[0, 2]", "run.keep_steps")):
        with pytest.raises(ValueError, match=needle):
            load_config(None, [f"run.keep_steps={value}"])
