"""A batched env: n sessions of one task stepped in one process, observations in one array.

``gymnasium.make_vec("annobc/<task>-v<N>", num_envs=n, vectorization_mode="vector_entry_point")``
builds :class:`AnnotationVectorEnv`. It behaves as ``SyncVectorEnv`` of n :class:`AnnotationEnv`
(the same observations, rewards, flags and infos for the same seeds and actions, autoreset modes
included) but skips what a generic vector env pays per sub-env: each session renders into its own
buffer, only what changed is redrawn, and the frame is copied once, into the preallocated
(n, H, W, 3) batch; infos are batched per key, not per key and env.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from annobc.env.annotation_env import DEFAULT_MAX_STEPS, AnnotationEnv
from annobc.gui import DEFAULT_SCREEN, DEFAULT_VARIANT

_ABSENT = object()


class AnnotationVectorEnv(VectorEnv):
    """``num_envs`` annotation envs of one task, stepped together.

    Arguments are :class:`AnnotationEnv`'s, plus ``num_envs``; ``copy`` (default True): return a
    copy of the observation batch, else the env's own array, overwritten by the next step (as
    ``SyncVectorEnv(copy=False)``); ``autoreset_mode`` (default next-step, as Gymnasium's).
    """

    def __init__(self, num_envs: int, task_id: str, params: dict | None = None,
                 screen_size: tuple[int, int] = DEFAULT_SCREEN, theme: str | None = None,
                 max_steps: int = DEFAULT_MAX_STEPS, render_mode: str | None = None,
                 ui_variant: str = DEFAULT_VARIANT, copy: bool = True,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = int(num_envs)
        self.envs = [AnnotationEnv(task_id, params, screen_size, theme, max_steps, render_mode,
                                   ui_variant) for _ in range(self.num_envs)]
        first = self.envs[0]
        self.task_id = task_id
        self.copy = copy
        self.autoreset_mode = (autoreset_mode if isinstance(autoreset_mode, AutoresetMode)
                               else AutoresetMode(autoreset_mode))
        self.metadata = dict(first.metadata)
        self.metadata["autoreset_mode"] = self.autoreset_mode
        self.render_mode = render_mode
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        w, h = first.screen_size
        self._w, self._h = w, h
        self._obs = np.zeros((self.num_envs, h, w, 3), np.uint8)
        self._rewards = np.zeros(self.num_envs, np.float64)
        self._terminations = np.zeros(self.num_envs, np.bool_)
        self._truncations = np.zeros(self.num_envs, np.bool_)
        self._autoreset = np.zeros(self.num_envs, np.bool_)
        self._started = False

    # -- helpers -------------------------------------------------------------------------------------
    def _observations(self) -> np.ndarray:
        return self._obs.copy() if self.copy else self._obs

    def _batch_infos(self, infos: list[dict | None], extra: dict | None = None) -> dict[str, Any]:
        """Per-env infos as ``VectorEnv._add_info`` batches them (key -> array, ``_key`` -> mask),
        one array per key instead of one per key and env."""
        n = self.num_envs
        keys: dict[str, None] = {}
        for info in infos:
            if info:
                keys.update(dict.fromkeys(info))
        out: dict[str, Any] = {}
        for key in keys:
            values = [_ABSENT if info is None else info.get(key, _ABSENT) for info in infos]
            first = next(v for v in values if v is not _ABSENT)
            if isinstance(first, dict):  # nested infos: Gymnasium's own batching
                nested: dict = {}
                for i, v in enumerate(values):
                    if v is not _ABSENT:
                        nested = self._add_info(nested, {key: v}, i)
                out.update(nested)
                continue
            if type(first) in (int, float, bool) or isinstance(first, np.number):
                array = np.zeros(n, dtype=type(first))
            elif isinstance(first, np.ndarray):
                array = np.zeros((n, *first.shape), dtype=first.dtype)
            else:
                array = np.full(n, None, dtype=object)
            mask = np.zeros(n, np.bool_)
            for i, v in enumerate(values):
                if v is not _ABSENT:
                    array[i] = v
                    mask[i] = True
            out[key], out[f"_{key}"] = array, mask
        if extra:
            for key, (array, mask) in extra.items():
                out[key], out[f"_{key}"] = array, mask
        return out

    def _actions(self, actions) -> list[tuple[int, int]]:
        a = np.asarray(actions)
        if a.shape != (self.num_envs, 2) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"actions must be ({self.num_envs}, 2) integers (x, y), one click per "
                             f"env; got shape {a.shape} of {a.dtype}")
        xs, ys = a[:, 0], a[:, 1]
        bad = (xs < 0) | (xs >= self._w) | (ys < 0) | (ys >= self._h)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"action {i} (x={int(xs[i])}, y={int(ys[i])}) is outside the "
                             f"{self._w}x{self._h} screen")
        return a.tolist()

    # -- the Gymnasium API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | list[int | None] | None = None,
              options: dict[str, Any] | None = None):
        n = self.num_envs
        if seed is None:
            seeds = [None] * n
        elif isinstance(seed, (int, np.integer)):
            seeds = [int(seed) + i for i in range(n)]
        else:
            seeds = list(seed)
        if len(seeds) != n:
            raise ValueError(f"If seeds are passed as a list the length must match "
                             f"num_envs={n} but got length={len(seeds)}.")
        options = dict(options) if options else None
        mask = None
        if options is not None and "reset_mask" in options:
            mask = options.pop("reset_mask")
            if not isinstance(mask, np.ndarray) or mask.shape != (n,) or mask.dtype != np.bool_:
                raise TypeError(f"options['reset_mask'] must be a bool array of shape ({n},)")
            if not mask.any():
                raise ValueError("options['reset_mask'] must reset at least one env")
        if mask is None:
            mask = np.ones(n, np.bool_)
        elif not self._started:
            raise RuntimeError("reset every env (no reset_mask) before a masked reset")
        infos: list[dict | None] = [None] * n
        for i in np.flatnonzero(mask):
            env = self.envs[i]
            infos[i] = env._new_episode(seeds[i])
            np.copyto(self._obs[i], env._render_frame())
        self._terminations[mask] = False
        self._truncations[mask] = False
        self._autoreset[mask] = False
        self._started = True
        return self._observations(), self._batch_infos(infos)

    def step(self, actions):
        if not self._started:
            raise RuntimeError("call reset() before step()")
        clicks = self._actions(actions)
        n = self.num_envs
        infos: list[dict | None] = [None] * n
        rewards, terms, truncs = self._rewards, self._terminations, self._truncations
        mode = self.autoreset_mode
        final_obs = final_info = None
        for i, env in enumerate(self.envs):
            if mode == AutoresetMode.NEXT_STEP and self._autoreset[i]:
                infos[i] = env._new_episode(None)
                rewards[i], terms[i], truncs[i] = 0.0, False, False
            else:
                if mode == AutoresetMode.DISABLED and self._autoreset[i]:
                    raise RuntimeError(f"env {i} ended: reset it (options reset_mask) before "
                                       f"stepping it again (autoreset mode disabled)")
                x, y = clicks[i]
                rewards[i], terms[i], truncs[i], infos[i] = env._click(x, y)
                if mode == AutoresetMode.SAME_STEP and (terms[i] or truncs[i]):
                    if final_obs is None:
                        final_obs = np.full(n, None, dtype=object)
                        final_info = np.full(n, None, dtype=object), np.zeros(n, np.bool_)
                    final_obs[i] = env._render_frame().copy()
                    final_info[0][i], final_info[1][i] = infos[i], True
                    infos[i] = env._new_episode(None)
            np.copyto(self._obs[i], env._render_frame())
        np.logical_or(terms, truncs, out=self._autoreset)
        extra = None
        if final_obs is not None:
            # Gymnasium batches a nested info dict per key; a final info is one dict per env.
            extra = {"final_obs": (final_obs, final_info[1].copy()),
                     "final_info": self._batch_final_infos(final_info)}
        out_infos = self._batch_infos(infos)
        if extra:
            out_infos["final_obs"], out_infos["_final_obs"] = extra["final_obs"]
            out_infos["final_info"], out_infos["_final_info"] = extra["final_info"]
        return (self._observations(), rewards.copy(), terms.copy(), truncs.copy(), out_infos)

    def _batch_final_infos(self, final_info) -> tuple[dict, np.ndarray]:
        infos, mask = final_info
        return self._batch_infos([infos[i] if mask[i] else None
                                  for i in range(self.num_envs)]), mask

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs):
        for env in self.envs:
            env.close()

    def get_attr(self, name: str) -> tuple:
        return tuple(getattr(env, name) for env in self.envs)

    @property
    def np_random_seed(self) -> tuple:
        return self.get_attr("np_random_seed")

    @property
    def np_random(self) -> tuple:
        return self.get_attr("np_random")

    def __repr__(self) -> str:
        return f"AnnotationVectorEnv({self.task_id}, num_envs={self.num_envs})"


def make_vector_env(task_id: str, num_envs: int, **kwargs) -> AnnotationVectorEnv:
    """``AnnotationVectorEnv`` without going through the Gymnasium registry."""
    return AnnotationVectorEnv(num_envs, task_id, **kwargs)


__all__ = ["AnnotationVectorEnv", "make_vector_env"]
