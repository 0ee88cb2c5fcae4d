"""annobc.loop: stages are skipped once finished, a killed training resumes from its checkpoint,
other settings into the same folder are refused."""

import json

import pytest

from annobc.loop import Loop, LoopSpec, success_by_round, task_figures

TASKS = ["colored_dot_tracking", "neuron_tracking"]
TINY = ["data.workers=0", "data.window=2", "optim.batch_size=4", "run.ckpt_every=2",
        "model.overrides={cnn_channels: [4, 8, 8], d_model: 16, n_layers: 1, n_heads: 2}"]


def spec(**kw):
    base = dict(tasks=TASKS, episodes_per_task=6, overrides=TINY, steps=4, rounds=1,
                round_episodes=2, round_steps=2, check_episodes=2, eval_episodes=2,
                temperatures=[0.4, 0.0], max_clicks=8, tf_windows=8, recovery_seeds=2, gifs=0,
                workers=1)
    return LoopSpec(**(base | kw))


def test_a_loop_with_a_round_and_two_temperatures(tmp_path, capsys):
    state = Loop(tmp_path, spec()).run()
    assert list(state["stages"]) == ["data", "train", "check/0", "round/1/dagger", "round/1/train",
                                     "check/1", "eval/0.4", "eval/0"]
    assert set(state["parts"]) == {f"round/1/dagger/{t}" for t in TASKS}
    assert state["stages"]["round/1/train"]["result"]["step"] == 2
    by_round = success_by_round(state)
    assert set(by_round) == set(TASKS) and all(len(v) == 2 for v in by_round.values())
    for t in TASKS:
        for temp in (0.4, 0.0):
            f = task_figures(state, t, temp)
            assert f["closed_loop"]["episodes"] == 2 and f["success_by_round"] == by_round[t]
            assert "accuracy_by_button" in f["teacher_forced"]
    assert (tmp_path / "eval-T0" / "report.md").exists()


def test_a_killed_training_resumes_from_its_checkpoint(tmp_path, capsys):
    Loop(tmp_path, spec(rounds=0, temperatures=[0.4])).run()
    # As if killed after the checkpoint at step 4 but before the stage was recorded.
    path = tmp_path / "loop.json"
    state = json.loads(path.read_text())
    del state["stages"]["train"], state["stages"]["eval/0.4"]
    path.write_text(json.dumps(state))
    capsys.readouterr()
    again = Loop(tmp_path, spec(rounds=0, temperatures=[0.4])).run()
    printed = capsys.readouterr().out
    assert "(resuming)" in printed and "generating" not in printed
    assert again["stages"]["train"]["result"]["step"] == 4


def test_other_settings_are_refused_and_bad_ones_rejected(tmp_path):
    Loop(tmp_path, spec(rounds=0, temperatures=[0.4])).save()
    with pytest.raises(ValueError, match=r"other settings \(steps: 4\)"):
        Loop(tmp_path, spec(rounds=0, steps=5))
    # The evaluation's settings may change between sittings.
    Loop(tmp_path, spec(rounds=0, eval_episodes=3))
    with pytest.raises(ValueError, match="round_mode"):
        spec(round_mode="imitate")
    with pytest.raises(ValueError, match="must be positive"):
        spec(steps=0)
