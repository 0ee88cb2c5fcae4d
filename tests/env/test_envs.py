import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import annobc  # noqa: F401  (registers the envs)
from annobc.env import ENV_IDS, AnnotationEnv, env_id
from annobc.tasks import run_annotator, task_ids


def test_every_task_has_a_registered_env():
    assert sorted(ENV_IDS) == sorted(env_id(t) for t in task_ids())
    for t in task_ids():
        assert env_id(t) in gym.registry


@pytest.mark.parametrize("eid", ENV_IDS)
def test_check_env_passes(eid):
    env = gym.make(eid)
    check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("task_id", task_ids())
def test_annotator_clicks_through_env_give_annotator_score(task_id):
    for seed in (0, 1):
        rec = run_annotator(task_id, seed)
        env = gym.make(env_id(task_id))
        obs, info = env.reset(seed=seed)
        assert info["seed"] == seed
        total, terminated, truncated = 0.0, False, False
        for i, (x, y) in enumerate(rec.clicks):
            assert not (terminated or truncated)
            obs, reward, terminated, truncated, info = env.step(np.array([x, y]))
            assert info["category"] == rec.steps[i].category
            assert info["is_mistake"] == rec.steps[i].is_mistake
            total += reward
        assert terminated
        assert info["score"] == pytest.approx(rec.score) and total == pytest.approx(rec.score)
        assert info["success"] == rec.success


@pytest.mark.parametrize("bad", [(160, 5), (-1, 5), (5, 128), (1, 2, 3), (1.5, 2.0), "ab", 7])
def test_bad_actions_raise_a_clear_error(bad):
    env = AnnotationEnv(task_ids()[0])
    env.reset(seed=0)
    with pytest.raises(ValueError, match="160x128|0 <= x < 160"):
        env.step(bad)


def test_reward_is_zero_until_the_end_and_truncation_at_step_cap():
    env = AnnotationEnv(task_ids()[0], max_steps=5)
    env.reset(seed=0)
    for i in range(5):
        _, reward, terminated, truncated, info = env.step(np.array([0, 0]))  # hits nothing
        assert info["category"] == "invalid"
        assert not terminated
        if i < 4:
            assert reward == 0.0 and not truncated
    assert truncated and "score" in info


def test_reset_without_seed_draws_a_replayable_seed():
    env = AnnotationEnv(task_ids()[0])
    env.reset(seed=123)
    obs1, info1 = env.reset()
    obs2, _ = AnnotationEnv(task_ids()[0]).reset(seed=info1["seed"])
    assert np.array_equal(obs1, obs2)


def test_observation_matches_space_at_a_larger_screen():
    env = AnnotationEnv(task_ids()[0], screen_size=(448, 358))
    obs, _ = env.reset(seed=0)
    assert obs.shape == (358, 448, 3) and env.observation_space.contains(obs)
    assert env.action_space.nvec.tolist() == [448, 358]


def test_unknown_task_lists_known_ones():
    with pytest.raises(ValueError, match="known tasks: .*colored_dot_tracking"):
        AnnotationEnv("no_such_task")
