"""The CLI's own behaviour: --version, the train subcommand, shipped configs, check-task, and a
one-line message when an optional extra is missing."""

import json
import subprocess
import sys

import pytest

from annobc import __version__
from annobc.cli.main import main


def run_cli(*args, block=()) -> subprocess.CompletedProcess:
    """Run ``annobc ARGS`` in a fresh interpreter in which the modules in ``block`` cannot be
    imported (as where an extra is not installed)."""
    code = ("import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in block)
            + "from annobc.cli.main import main\nsys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=300)


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"annobc {__version__}"


def test_train_is_a_subcommand_that_prints_params_of_a_shipped_config(capsys):
    assert main(["train", "cpu_demo", "--print-params"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] > 1e5
    assert main(["train", "--list-configs"]) == 0
    assert {"cpu_demo", "gpu_paper"} <= set(capsys.readouterr().out.split())


def test_train_with_an_unknown_config_is_one_line(capsys):
    assert main(["train", "no_such_config", "--print-params"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no_such_config" in err[0]


@pytest.mark.parametrize("module", ["safetensors", "torch"])
def test_a_missing_train_extra_is_named_in_one_line(module):
    r = run_cli("train", "cpu_demo", "--print-params", block=(module,))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"annobc train needs the [train] extra (no module {module!r}): pip install 'annobc[train]'"]


def test_train_help_needs_no_extra():
    r = run_cli("train", "--help", block=("torch", "safetensors", "matplotlib"))
    assert r.returncode == 0 and "shipped config" in r.stdout


def test_a_missing_web_extra_is_named_in_one_line(tmp_path):
    r = run_cli("serve", "--out", str(tmp_path / "h"), block=("uvicorn",))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].endswith("pip install 'annobc[web]'")


def test_check_task_prints_a_line_per_check(monkeypatch, capsys):
    import annobc.tasks.contract as contract

    def fake(task_id, n_seeds, progress=None):
        return {"task": task_id, "seeds": n_seeds, "passed": False, "checks": [
            {"name": "annotator success", "figure": 0.5, "passed": False, "required": ">= 0.98"},
            {"name": "replay", "figure": True, "passed": True, "required": "every frame"}]}

    monkeypatch.setattr(contract, "check_task", fake)
    assert main(["check-task", "neuron_tracking", "--seeds", "3"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("FAIL  annotator success: 0.500") and out[1].startswith("PASS  replay")
    assert main(["check-task", "neuron_tracking", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["task"] == "neuron_tracking"


def test_tasks_name_their_origin(capsys):
    assert main(["tasks", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["origin"] for r in rows} >= {"annobc"}
