"""Takeover episodes (the policy rolls in, the annotator rolls out; the policy's clicks are context)
and DAgger episodes (the policy plays, the annotator labels every click)."""

import numpy as np
import pytest
import torch

from annobc.data import EpisodeStore, Plan, generate
from annobc.data.windows import EpisodeWindows, WindowDataset
from annobc.eval.takeover import (MODES, add_takeover_episodes, dagger_episodes, describe,
                                  takeover_episodes)
from annobc.models import ClickPolicy, PolicyConfig
from annobc.tasks import replay_score, task_ids

TASK = "colored_dot_tracking"
TINY = dict(cnn_channels=(4, 8, 8), d_model=16, n_layers=1, n_heads=2, window=3, head="cells")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return ClickPolicy(PolicyConfig(**TINY)).eval()


def test_policy_rolls_in_and_the_annotator_finishes(model):
    recs = takeover_episodes(model, TASK, list(range(6)), rollin_max=12, screen=(160, 128),
                             params={"n_targets": [4, 8]}, temperature=1.0)
    assert len(recs) == 6
    rollins = []
    for r in recs:
        learner = [s.learner for s in r.steps]
        n = learner.index(False) if False in learner else len(learner)
        assert not any(learner[n:])  # the policy's clicks come first, then only the annotator's
        assert all(s.element != "DONE" for s in r.steps[:n])  # it hands over instead of DONE
        assert r.done and r.steps[-1].element == "DONE"
        assert replay_score(r) == (pytest.approx(r.score), r.success)  # replayable as recorded
        rollins.append(n)
    assert 1 <= max(rollins) <= 12
    assert np.mean([r.success for r in recs]) >= 0.8  # the annotator repairs a random policy's mess


@pytest.mark.parametrize("task_id", task_ids())
def test_takeover_and_dagger_work_on_every_task(model, task_id):
    """Every task's expert finishes a random policy's roll-in and labels its states."""
    recs = takeover_episodes(model, task_id, [0, 1], rollin_max=5, screen=(160, 128), max_steps=600)
    assert all(r.done and r.success for r in recs)
    labelled = dagger_episodes(model, task_id, [0], max_steps=5, screen=(160, 128))
    steps = labelled[0].steps
    assert all(s.label_x >= 0 or not s.learner for s in steps)


def test_added_shard_trains_on_annotator_clicks_only(model, tmp_path):
    root = tmp_path / "data"
    generate(root, Plan(tasks=(TASK,), episodes_per_task=10, shard_size=5,
                        params={TASK: {"n_targets": [4, 8]}}), progress=False)
    stats_before = EpisodeStore(root).card["stats"]
    out = add_takeover_episodes(model, root, TASK, episodes=4, rollin_max=10)
    assert out["episodes"] == 4 and out["rollin_steps"] > 0 and out["expert_steps"] > 0
    store = EpisodeStore(root)
    assert len(store.episode_ids("train")) == 8 + 4
    assert store.card["stats"] == stats_before  # the card describes the demonstrations
    taken = [e for e in store.episode_ids("train") if "takeover" in e]
    assert len(taken) == 4 and all(store.steps(e)["learner"].any() for e in taken)
    ds = WindowDataset(store, "train", window=3, seed=0)
    n_windows, last_imitated = 0, True
    for w in ds:
        n_windows += 1
        last_imitated &= bool(w["imitate"][-1])
    expected = sum(int((~store.steps(e)["learner"]).sum()) for e in store.episode_ids("train"))
    assert n_windows == expected and last_imitated
    with pytest.raises(ValueError, match="not in the dataset"):
        add_takeover_episodes(model, root, "neuron_tracking", episodes=1)


def test_dagger_labels_every_policy_click_and_the_annotator_undoes_at_once(model):
    recs = dagger_episodes(model, TASK, list(range(4)), max_steps=40, screen=(160, 128),
                           params={"n_targets": [4, 8]}, temperature=1.0)
    for r in recs:
        assert 1 <= len(r) <= 40 and replay_score(r) == (pytest.approx(r.score), r.success)
        for s in r.steps:
            if s.learner:  # the policy's click, with the annotator's for the same state
                assert s.label_x >= 0 and s.label_category is not None
                assert s.label_category != "undo"  # those the annotator clicks itself
            else:
                assert s.element == "UNDO" and s.label_x == -1
    undone = [s for r in recs for s in r.steps if not s.learner]
    assert undone and all(s.mistake_present for s in undone)  # only wrong markers are undone


def test_dagger_shard_trains_on_the_labels_with_the_policy_clicks_as_history(model, tmp_path):
    root = tmp_path / "data"
    generate(root, Plan(tasks=(TASK,), episodes_per_task=6, shard_size=6,
                        params={TASK: {"n_targets": [4, 8]}}), progress=False)
    out = add_takeover_episodes(model, root, TASK, episodes=3, rollin_max=15, mode="dagger")
    assert out["mode"] == "dagger" and out["labelled_steps"] > 0
    assert "DAgger episodes" in describe(out)
    store = EpisodeStore(root)
    eid = next(e for e in store.episode_ids("train") if "dagger" in e)
    st = store.steps(eid)
    w = EpisodeWindows.from_store(store, eid)
    lab = st["label_x"] >= 0
    assert lab.any() and w.imitate.all()  # every step is a label or an annotator's own click
    assert (w.xy[lab, 0] == st["label_x"][lab]).all() and (w.xy[lab, 1] == st["label_y"][lab]).all()
    assert (w.prev_xy[1:, 0] == st["x"][:-1]).all()  # the history is the clicks made
    with pytest.raises(ValueError, match="mode"):
        add_takeover_episodes(model, root, TASK, episodes=1, mode="imitate")
    from annobc.cli.main import MODES as CLI_MODES
    assert CLI_MODES == MODES
