"""A task on a screen: hit-testing, stepping and rendering. The engine under envs and annotators."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from annobc.gui import (DEFAULT_SCREEN, DEFAULT_VARIANT, CanvasMapper, FrameState, Layout, Screen,
                        UIVariant, get_theme, get_variant)
from annobc.tasks.base import NO_EFFECT, Effect, params_from_dict
from annobc.tasks.registry import get_task_class


@lru_cache(maxsize=256)
def _screen_for(labels: tuple[str, ...], width: int, height: int, theme: str,
                variant: "str | UIVariant" = DEFAULT_VARIANT) -> Screen:
    # Chrome, button faces and the glyph atlas depend only on these, so every episode shares them.
    return Screen(Layout(width, height, labels, variant), get_theme(theme))


class StepResult(NamedTuple):
    """What one click did (immutable; a named tuple because one is made per step)."""

    element: str | None  # button label, "canvas", or None
    category: str  # one of base.CATEGORIES
    effect: Effect
    position: float  # latent position of the view the click was made on
    mistake_present: bool  # an uncorrected wrong annotation existed before the click
    removed_mistake: bool  # the click lowered the number of wrong annotations


class Session:
    """One episode of a task rendered on one screen.

    ``params`` may be a params dataclass, a dict of overrides, or None for the defaults.
    ``ui_variant`` names a GUI variant (:data:`annobc.gui.UI_VARIANTS`): the layout, and the theme
    unless ``theme`` names one; an explicit ``theme`` overrides the variant's (None: the variant's;
    the default variant's theme is the default theme, "dark").

    The session renders into a frame buffer of its own, redrawing only what changed since its
    last frame; :meth:`render` hands out a copy (or copies into ``out``).
    """

    def __init__(self, task_id: str, seed: int, params: Any = None,
                 screen_size: tuple[int, int] = DEFAULT_SCREEN, theme: str | None = None,
                 ui_variant: "str | UIVariant" = DEFAULT_VARIANT):
        cls = get_task_class(task_id)
        if params is None or isinstance(params, dict):
            params = params_from_dict(cls.Params, params)
        variant = get_variant(ui_variant)
        theme = variant.theme if theme is None else theme
        w, h = int(screen_size[0]), int(screen_size[1])
        screen = _screen_for(tuple(b.label for b in cls.buttons), w, h, theme, variant)
        self.task_id = task_id
        self.task_cls = cls
        self.ui_variant = variant.name
        self.task = cls(params, seed)
        self.screen = screen
        self.layout = self.screen.layout
        self.mapper = CanvasMapper(self.layout.canvas, *self.task.data_shape)
        self._category = {b.label: b.category for b in cls.buttons}
        self._canvas_cache: dict = {}
        self._frame: np.ndarray | None = None  # the buffer the frames are drawn in (writable)
        self._frame_out: np.ndarray | None = None  # a read-only view of it, what frame() hands out
        self._canvas_out: np.ndarray | None = None  # the buffer's canvas region, for overlays
        self._frame_state = FrameState()
        self.steps = 0

    @property
    def theme(self) -> str:
        return self.screen.theme.name

    @property
    def done(self) -> bool:
        return self.task.done

    def hit(self, x: int, y: int) -> tuple[str | None, str]:
        """What a click at (x, y) would hit, and its category, without making it."""
        element = self.layout.hit(x, y)
        if element is None:
            return None, "invalid"
        return element, "place" if element == "canvas" else self._category[element]

    def step(self, x: int, y: int) -> StepResult:
        if self.task.done:
            raise RuntimeError("episode is over (DONE was clicked); start a new session")
        task = self.task
        position = task.position()
        wrong_before = task.n_wrong()
        element, category = self.hit(x, y)
        if element is None:
            effect = NO_EFFECT
        elif element == "canvas":
            effect = task.click_canvas(*self.mapper.to_data(x, y))
        else:
            effect = task.press(element)
        self.steps += 1
        removed = category == "undo" and task.n_wrong() < wrong_before
        return StepResult(element, category, effect, position, wrong_before > 0, removed)

    def click_button(self, label: str) -> StepResult:
        """Click the centre of a button (for scripts and tests; annotators jitter their clicks)."""
        r = self.layout.buttons[label]
        return self.step(r.x0 + r.w // 2, r.y0 + r.h // 2)

    def click_data(self, u: float, v: float) -> StepResult:
        """Click the canvas pixel nearest to data coordinates (u, v)."""
        return self.step(*self.mapper.to_screen(u, v))

    def canvas_image(self) -> np.ndarray:
        """The current view's base image at canvas pixel size (the task caches it per view; an
        upscaled copy is cached here only when the canvas is larger than the data grid)."""
        img = self.task.view_image()
        if self.mapper.identity:
            return img
        key = self.task.view_key()
        big = self._canvas_cache.get(key)
        if big is None:
            big = self._canvas_cache[key] = self.mapper.to_canvas_image(img)
        return big

    def render(self, out: np.ndarray | None = None) -> np.ndarray:
        """The current frame: a new array, or copied into ``out`` (H, W, 3) uint8 and returned."""
        frame = self.frame()
        if out is None:
            return frame.copy()
        np.copyto(out, frame)
        return out

    def frame(self) -> np.ndarray:
        """The current frame in the session's own buffer, read-only and valid until the next
        render: no copy is made (what the vector env copies into its batch)."""
        buf = self._frame
        if buf is None:
            L = self.layout
            buf = self._frame = np.empty((L.height, L.width, 3), np.uint8)
            # The views are made once: the buffer stays writable for drawing, callers get a
            # read-only view of it.
            self._canvas_out = self.screen.canvas_view(buf)
            self._frame_out = buf.view()
            self._frame_out.flags.writeable = False
        task = self.task
        state = self._frame_state
        # A click that changes neither the view nor what the overlays show (a tool, a tab)
        # leaves the canvas as the buffer holds it: it is not pasted and drawn on again.
        key = task.canvas_key()
        same = key is not None and state.valid and state.canvas is not None and state.canvas == key
        self.screen.render_into(buf, state, None if same else self.canvas_image(),
                                task.buttons_lit(), task.status(), task.status_colors())
        if not same:
            task.draw_overlays(self._canvas_out, self.mapper)
            state.canvas = key
        return self._frame_out
