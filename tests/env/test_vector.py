"""The batched env: registered as each env id's vector entry point, the same observations, rewards,
flags and infos as SyncVectorEnv of single envs (and as n single envs), in one (n, H, W, 3) array."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_returned_data_not_reused, data_equivalence
from gymnasium.vector import AutoresetMode

import annobc  # noqa: F401  (registers the envs)
from annobc.env import ENV_IDS, AnnotationEnv, AnnotationVectorEnv, env_id
from annobc.tasks import Session, run_annotator, task_ids

TASK = "colored_dot_tracking"


def biased_actions(task_id: str, n: int, steps: int, seed: int = 0, variant: str = "default"):
    """Random clicks, a third of them on button centres (DONE included), so episodes end."""
    lay = Session(task_id, 0, ui_variant=variant).layout
    centres = [((r.x0 + r.x1) // 2, (r.y0 + r.y1) // 2) for r in lay.buttons.values()]
    rng = np.random.default_rng(seed)
    out = np.stack([rng.integers(0, lay.width, (steps, n)), rng.integers(0, lay.height, (steps, n))], -1)
    pick = rng.random((steps, n)) < 0.33
    which = rng.integers(0, len(centres), (steps, n))
    out[pick] = np.array(centres)[which[pick]]
    return out


def test_every_env_id_has_a_vector_entry_point():
    for eid in ENV_IDS:
        assert gym.spec(eid).vector_entry_point == "annobc.env.vector:AnnotationVectorEnv"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. missing autoreset_mode metadata
        v = gym.make_vec(env_id(TASK), num_envs=3, vectorization_mode="vector_entry_point")
    assert isinstance(v.unwrapped, AnnotationVectorEnv)
    assert v.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert v.observation_space.shape == (3, 128, 160, 3)
    assert v.single_observation_space == AnnotationEnv(TASK).observation_space
    assert v.action_space.shape == (3, 2)
    obs, info = v.reset(seed=0)
    assert obs.shape == (3, 128, 160, 3) and obs.dtype == np.uint8 and v.observation_space.contains(obs)
    assert info["seed"].tolist() == [0, 1, 2] and info["_seed"].all()


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
@pytest.mark.parametrize("task_id", [TASK, "animal_limb_tracking", "road_network_construction"])
def test_same_data_as_sync_vector_env(task_id, mode):
    n, kw = 4, {"max_steps": 12}
    sync = gym.make_vec(env_id(task_id), num_envs=n, vectorization_mode="sync",
                        vector_kwargs={"autoreset_mode": mode}, **kw)
    ours = gym.make_vec(env_id(task_id), num_envs=n, vectorization_mode="vector_entry_point",
                        autoreset_mode=mode, **kw)
    assert data_equivalence(sync.reset(seed=7), ours.reset(seed=7), exact=True)
    ended = 0
    for t, a in enumerate(biased_actions(task_id, n, 60)):
        ra, rb = sync.step(a), ours.step(a)
        assert data_equivalence(ra, rb, exact=True), t
        ended += int(ra[2].sum() + ra[3].sum())
    assert ended >= n  # autoreset was exercised
    assert data_equivalence(sync.reset(seed=[3, None, 5, 6]), ours.reset(seed=[3, None, 5, 6]),
                            exact=True)
    mask = np.array([True, False, True, False])
    assert data_equivalence(sync.reset(options={"reset_mask": mask}),
                            ours.reset(options={"reset_mask": mask}), exact=True)


@pytest.mark.parametrize("variant", ["default", "bottom-compact"])
def test_observations_equal_those_of_single_envs(variant):
    n = 3
    recs = [run_annotator(TASK, s, ui_variant=variant) for s in range(n)]
    steps = min(len(r) for r in recs)
    v = gym.make_vec(env_id(TASK), num_envs=n, vectorization_mode="vector_entry_point",
                     ui_variant=variant, autoreset_mode="Disabled")
    singles = [gym.make(env_id(TASK), ui_variant=variant) for _ in range(n)]
    obs, _ = v.reset(seed=[0, 1, 2])
    for i, e in enumerate(singles):
        assert np.array_equal(obs[i], e.reset(seed=i)[0])
    for t in range(steps):
        a = np.array([r.clicks[t] for r in recs])
        obs, rew, term, trunc, info = v.step(a)
        for i, e in enumerate(singles):
            o, r, te, tr, inf = e.step(a[i])
            assert np.array_equal(obs[i], o) and rew[i] == r and term[i] == te and trunc[i] == tr
            assert info["category"][i] == inf["category"]
    assert term[np.array([len(r) for r in recs]) == steps].all()


def test_returned_data_is_not_reused_and_copy_false_shares_the_batch():
    for mode in ("NextStep", "SameStep"):
        check_returned_data_not_reused(gym.make_vec(env_id(TASK), num_envs=1,
                                                    vectorization_mode="vector_entry_point",
                                                    autoreset_mode=mode))
    v = AnnotationVectorEnv(2, TASK, copy=False)
    a, _ = v.reset(seed=0)
    b = v.step(np.array([[0, 0], [0, 0]]))[0]
    assert a is b  # the env's own array, as SyncVectorEnv(copy=False)


def test_bad_actions_and_disabled_autoreset_fail_clearly():
    v = AnnotationVectorEnv(2, TASK, autoreset_mode="Disabled", max_steps=1)
    with pytest.raises(RuntimeError, match="reset"):
        v.step(np.zeros((2, 2), int))
    v.reset(seed=0)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        v.step(np.zeros((3, 2), int))
    with pytest.raises(ValueError, match="outside the 160x128 screen"):
        v.step(np.array([[0, 0], [160, 0]]))
    _, _, _, trunc, _ = v.step(np.zeros((2, 2), int))
    assert trunc.all()
    with pytest.raises(RuntimeError, match="reset_mask"):
        v.step(np.zeros((2, 2), int))
    v.reset(options={"reset_mask": np.array([True, True])})
    v.step(np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="num_envs"):
        AnnotationVectorEnv(0, TASK)


def test_env_takes_a_ui_variant():
    a = gym.make(env_id(TASK), ui_variant="left").unwrapped
    b = gym.make(env_id(TASK)).unwrapped
    oa, _ = a.reset(seed=4)
    ob, _ = b.reset(seed=4)
    assert a.ui_variant == "left" and a.theme == "dark" and not np.array_equal(oa, ob)
    c = AnnotationEnv(TASK, ui_variant="high-contrast", theme="light")
    assert c.theme == "light"
    with pytest.raises(ValueError, match="known variants"):
        AnnotationEnv(TASK, ui_variant="nope")


@pytest.mark.parametrize("task_id", task_ids())
def test_check_env_passes_in_a_variant(task_id):
    from gymnasium.utils.env_checker import check_env

    check_env(gym.make(env_id(task_id), ui_variant="bottom").unwrapped, skip_render_check=True)
