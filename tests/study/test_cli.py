"""annobc study from the command line: plan, a tiny run, errors in one line."""

import json
import subprocess
import sys

from annobc.cli.main import main

from .conftest import TINY, TRAIN, check_report_figures


def test_plan_prints_the_paper_runs(capsys):
    assert main(["study", "scaling", "--scale", "paper", "--plan"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert len(plan["train"]) == 12 and plan["estimated_training_gpu_hours"] > 0


def test_plan_of_the_probes_reads_the_emergence_run(capsys):
    from annobc.cli.main import STUDY_NAMES
    from annobc.study import STUDIES

    assert STUDY_NAMES == STUDIES  # the parser's choices, spelled out, are the studies
    assert main(["study", "probes", "--scale", "micro", "--plan"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["train"] == [] and plan["reads"][0]["study"] == "emergence"
    assert len(plan["probed_steps"]) == 7
def test_the_command_line_knows_every_study():
    from annobc.cli.main import STUDY_NAMES, STUDY_SCALES
    from annobc.study import PRESETS, SCALES, STUDIES

    assert STUDY_NAMES == STUDIES == tuple(PRESETS) and STUDY_SCALES == SCALES


def test_variants_plan_from_the_command_line(capsys):
    assert main(["study", "variants", "--plan", "--set", "held_out_variants=[bottom]"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["variant_sets"]["held-out"] == ["bottom"]
    assert [r["run"] for r in plan["train"]] == ["variants", "default", "default-finetuned"]


def test_a_tiny_run_from_the_command_line(tmp_path, capsys):
    sets = ["tasks=colored_dot_tracking,neuron_tracking", "episodes_per_task=5", "data_workers=1",
            f"model_overrides={json.dumps(TINY)}", "train_steps=6", "first_step=1", "checkpoints=4",
            "tf_windows=8", "tf_batch=8", "closed_loop_checkpoints=2", "closed_loop_episodes=1",
            "final_closed_loop_episodes=1", "closed_loop_max_steps=8", "recovery_seeds=1",
            "bootstrap=20", "min_windows=1", "threads=1", f"train_overrides={json.dumps(TRAIN)}"]
    argv = ["study", "emergence", "--out", str(tmp_path), "--json"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["teacher_forced"]["steps"] == [1, 2, 3, 6]
    assert check_report_figures(tmp_path) > 20
    assert main(argv) == 0  # rerun: everything reused
    assert json.loads(capsys.readouterr().out)["units"]["computed"] == []


def test_errors_are_one_line():
    for argv, needle in ((["--set", "no_such=1"], "unknown setting"),
                         (["--set", "nonsense"], "KEY=VALUE")):
        p = subprocess.run([sys.executable, "-m", "annobc.cli.main", "study", "emergence", "--plan",
                            *argv], capture_output=True, text=True, timeout=120)
        err = p.stderr.strip()
        assert p.returncode == 2 and needle in err and len(err.splitlines()) == 1, err


def test_held_out_tasks_from_the_command_line(capsys):
    argv = ["study", "transfer", "--held-out", "neuron_tracking", "--held-out", "road_network_construction",
            "--plan"]
    assert main(argv) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["held_out"] == ["neuron_tracking", "road_network_construction"]
    assert main(["study", "transfer", "--set", "held_out=[neuron_tracking, road_network_construction]",
                 "--plan"]) == 0
    assert json.loads(capsys.readouterr().out)["train"] == plan["train"]
    assert main(["study", "scaling", "--held-out", "neuron_tracking", "--plan"]) == 2
    assert "transfer study only" in capsys.readouterr().err
