"""The Gymnasium env shared by every task: one left click per step, the rendered screen as observation."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from annobc.gui import DEFAULT_SCREEN, DEFAULT_VARIANT, get_variant
from annobc.tasks.registry import get_task_class
from annobc.tasks.session import Session

DEFAULT_MAX_STEPS = 1000


class AnnotationEnv(gym.Env):
    """A simulated annotation GUI as a Gymnasium env.

    ## Description
    One scientific annotation task (see ``annobc tasks`` and docs/tasks.md): a canvas showing data
    (a slice, a frame, a band), a panel of labelled buttons and a status line. Each task's own
    docstring (``annobc.tasks.get_task_class(task_id).__doc__``) specifies its scene and buttons.

    ## Action Space
    ``MultiDiscrete([W, H])``: one left click at integer pixel (x, y). A click that hits no element
    changes nothing (an invalid action). An action outside the screen or of the wrong shape raises
    ``ValueError``.

    ## Observation Space
    ``Box(0, 255, (H, W, 3), uint8)``: the rendered screen after the click.

    ## Rewards
    Zero on every step until the episode ends (DONE or the step cap), then the task score in [0, 1].

    ## Episode End
    Terminated when DONE is clicked; truncated after ``max_steps`` clicks.
    ``info`` carries ``element`` (button label, ``"canvas"`` or None), ``category``, the per-step
    latents ``position``, ``mistake_present`` (before the click), ``is_mistake``, ``annotated`` and
    ``removed_mistake``; at the end also ``score`` and ``success``. After reset, ``info["seed"]``
    is the seed that regenerates the scene.

    ## Arguments
    ``task_id``; ``params`` (dict of task parameters, defaults otherwise); ``screen_size``
    (W, H), default 160x128; ``theme`` (None: the GUI variant's; a name overrides it);
    ``max_steps`` (default 1000); ``render_mode`` (``"rgb_array"`` or None); ``ui_variant``, a
    GUI variant of :data:`annobc.gui.UI_VARIANTS` (default ``"default"``; docs/tasks/variants.md).

    Many envs at once: ``gymnasium.make_vec(env_id, num_envs=n,
    vectorization_mode="vector_entry_point")`` gives :class:`annobc.env.vector.AnnotationVectorEnv`,
    n sessions stepped in one process into one (n, H, W, 3) observation array.

    ## Version History
    - v0: initial version (the version number is the task's).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, task_id: str, params: dict | None = None,
                 screen_size: tuple[int, int] = DEFAULT_SCREEN, theme: str | None = None,
                 max_steps: int = DEFAULT_MAX_STEPS, render_mode: str | None = None,
                 ui_variant: str = DEFAULT_VARIANT):
        self.task_cls = get_task_class(task_id)
        self.task_id = task_id
        self.params = dict(params or {})
        self.screen_size = (int(screen_size[0]), int(screen_size[1]))
        self.ui_variant = get_variant(ui_variant).name
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        self.max_steps = int(max_steps)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.render_mode = render_mode
        w, h = self.screen_size
        self.action_space = spaces.MultiDiscrete([w, h])
        self.observation_space = spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.session: Session | None = None
        # Build the screen once now so a bad size, theme or variant fails at construction, not
        # at reset.
        probe = Session(task_id, 0, self.params, self.screen_size, theme, self.ui_variant)
        self.theme = probe.theme
        self._frame: np.ndarray | None = None  # the last frame: the session's read-only buffer

    # -- the parts the vector env shares -----------------------------------------------------------
    def _new_episode(self, seed: int | None) -> dict:
        """Reset to a new episode (not rendered); returns its info."""
        super().reset(seed=seed)
        if seed is None:
            # Every episode gets a concrete seed so that it can be replayed.
            seed = int(self.np_random.integers(0, 2**31 - 1))
        self.session = Session(self.task_id, seed, self.params, self.screen_size, self.theme,
                               self.ui_variant)
        return {"seed": int(seed), "position": self.session.task.position()}

    def _click(self, x: int, y: int) -> tuple[float, bool, bool, dict]:
        """One checked click (not rendered): (reward, terminated, truncated, info)."""
        session = self.session
        res = session.step(x, y)
        terminated = session.task.done
        truncated = not terminated and session.steps >= self.max_steps
        effect = res.effect
        info: dict[str, Any] = {
            "element": res.element, "category": res.category, "position": res.position,
            "mistake_present": res.mistake_present, "is_mistake": effect.wrong,
            "annotated": effect.annotated, "removed_mistake": res.removed_mistake,
        }
        reward = 0.0
        if terminated or truncated:
            score, success = session.task.score()
            reward = float(score)
            info["score"], info["success"] = float(score), bool(success)
        return reward, terminated, truncated, info

    def _render_frame(self) -> np.ndarray:
        self._frame = frame = self.session.frame()
        return frame

    # -- the Gymnasium API ---------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        info = self._new_episode(seed)
        return self._render_frame().copy(), info

    def _check_action(self, action) -> tuple[int, int]:
        w, h = self.screen_size
        if type(action) is np.ndarray and action.shape == (2,) and action.dtype.kind in "iu":
            x, y = action.tolist()  # the common case, without the general checks below
        else:
            a = np.asarray(action)
            if a.shape != (2,) or not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"action must be 2 integers (x, y) with 0 <= x < {w} and "
                                 f"0 <= y < {h}; got {action!r}")
            x, y = int(a[0]), int(a[1])
        if not (0 <= x < w and 0 <= y < h):
            raise ValueError(f"action (x={x}, y={y}) is outside the {w}x{h} screen: "
                             f"expected 0 <= x < {w} and 0 <= y < {h}")
        return x, y

    def step(self, action):
        if self.session is None:
            raise RuntimeError("call reset() before step()")
        x, y = self._check_action(action)
        reward, terminated, truncated, info = self._click(x, y)
        return self._render_frame().copy(), reward, terminated, truncated, info

    def render(self):
        if self.render_mode == "rgb_array" and self._frame is not None:
            return self._frame.copy()
        return None
