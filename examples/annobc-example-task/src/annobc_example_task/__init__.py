"""blink_marking: an annobc task written outside annobc, registered by an entry point.

Single-molecule localisation in miniature: a short movie of a noisy field with a few steady
background spots; in every frame one more spot blinks on. The annotator marks the blinking spot of
each frame, stepping through the movie, and presses DONE.

The module holds the three parts every task has: its parameters, the task (scene, GUI state
machine, rendering, score) and its annotator (the expert: a policy of the task's state).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from annobc.gui import draw_mark
from annobc.tasks import Annotator, Button, Effect, Intent, Persona, Task
from annobc.tasks.base import NO_EFFECT
from annobc.tasks.textures import camera_noise

MATCH_RADIUS = 2.0  # a marker within this many data pixels of the frame's blink finds it
MARKER_COLOR = (255, 220, 60)


@dataclass(frozen=True)
class Params:
    size: int = 56  # the square data grid
    n_frames: tuple[int, int] = (26, 32)
    n_background: tuple[int, int] = (3, 6)  # steady spots, on in every frame
    sigma: float = 1.3  # spot width, data pixels
    amplitude: float = 150.0
    noise: float = 10.0
    min_separation: float = 7.0


@dataclass(frozen=True)
class BlinkPersona(Persona):
    slip_rate: float = 0.03  # a marker lands beside the blink (3-4 data pixels off)
    notice_rate: float = 0.99  # ... and is seen and undone at once
    step_back_rate: float = 0.02  # after marking, steps back one frame to compare (exploration)

    MISTAKE_FIELDS: ClassVar[tuple[str, ...]] = ("mistake_rate", "slip_rate")
    NOTICE_FIELDS: ClassVar[tuple[str, ...]] = ("notice_rate",)


class BlinkMarking(Task):
    """Mark the spot that blinks on in every frame of the movie.

    ## Description
    A movie of ``n_frames`` frames shows a few steady background spots over camera noise; in each
    frame one more spot is on (a different place per frame). Mark it in every frame.

    ## Action Space
    A left click at a screen pixel. Buttons: ``+T``, ``-T`` (navigate), ``UNDO``, ``DONE``. A canvas
    click places a marker at (x, y, current frame).

    ## Observation Space
    The rendered screen: the current frame with its markers as crosses, and the status lines
    ``FRAME <t>/<T-1>`` and ``MARKED <frames with a marker>``.

    ## Rewards
    Zero until the episode ends, then the share of frames whose blink is marked, times the
    share of markers that find a blink.

    ## Episode End
    DONE terminates; the env's step cap truncates. Success: every blink marked, no other marker.

    ## Arguments
    See :class:`Params`: grid size, frames, background spots, spot width and brightness, noise.

    ## Version History
    - v0: initial version.
    """

    task_id = "blink_marking"
    version = 0
    instruction = "In every frame, mark the spot that blinks on. Step with +T / -T."
    Params = Params
    buttons = (Button("+T", "navigate"), Button("-T", "navigate"), Button("UNDO", "undo"),
               Button("DONE", "done"))
    personas = {"default": BlinkPersona(),
                "hasty": BlinkPersona(slip_rate=0.06, notice_rate=0.995, step_back_rate=0.0)}
    correction_length = 1  # the wrong marker is the latest: one UNDO

    # -- scene ---------------------------------------------------------------------------------
    def setup(self, rng: np.random.Generator) -> None:
        p = self.params
        self.n_frames = int(rng.integers(p.n_frames[0], p.n_frames[1] + 1))
        n_bg = int(rng.integers(p.n_background[0], p.n_background[1] + 1))
        self.background = self._spots(rng, n_bg, [])
        self.blinks = [self._spots(rng, 1, self.background)[0] for _ in range(self.n_frames)]
        self._noise_offsets = rng.integers(0, 256 - p.size, (self.n_frames, 2))
        self.t = 0
        self.ann: tuple[tuple[float, float, int], ...] = ()  # markers (u, v, frame)

    def _spots(self, rng, n: int, avoid: list) -> list[tuple[float, float]]:
        p, out = self.params, []
        while len(out) < n:
            u, v = rng.uniform(5, p.size - 6, 2)
            if all(np.hypot(u - a, v - b) >= p.min_separation for a, b in avoid + out):
                out.append((float(u), float(v)))
        return out

    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.params.size, self.params.size)

    # -- GUI state machine ----------------------------------------------------------------------
    def press_button(self, label: str) -> Effect:
        if label == "+T":
            self.t = min(self.t + 1, self.n_frames - 1)
        elif label == "-T":
            self.t = max(self.t - 1, 0)
        return NO_EFFECT

    def click_canvas(self, u: float, v: float) -> Effect:
        self.checkpoint()
        before = self.n_wrong()
        self.ann = self.ann + ((u, v, self.t),)
        return Effect(annotated=True, wrong=self.n_wrong() > before)

    # -- what the screen shows ----------------------------------------------------------------
    def view_key(self):
        return self.t

    def render_view(self, key) -> np.ndarray:
        p = self.params
        yy, xx = np.mgrid[0:p.size, 0:p.size].astype(np.float32)
        img = np.zeros((p.size, p.size), np.float32)
        for u, v in self.background + [self.blinks[key]]:
            img = np.maximum(img, np.exp(-0.5 * ((xx - u) ** 2 + (yy - v) ** 2) / p.sigma ** 2))
        oy, ox = self._noise_offsets[key]
        noise = camera_noise(256, 7)[oy:oy + p.size, ox:ox + p.size]
        grey = np.clip(20 + p.amplitude * img + p.noise * noise, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)

    def draw_overlays(self, canvas: np.ndarray, mapper) -> None:
        r = max(2, round(2 * mapper.pixel_size))
        for u, v, t in self.ann:
            if t == self.t:
                draw_mark(canvas, *mapper.to_canvas_px(u, v), MARKER_COLOR, "x", r)

    def status(self) -> tuple[str, ...]:
        marked = len({t for _, _, t in self.ann})
        return (f"FRAME {self.t}/{self.n_frames - 1}", f"MARKED {marked}")

    # -- latents and score ----------------------------------------------------------------------
    def position(self) -> float:
        return self.t / (self.n_frames - 1)

    def target_point(self, k: int) -> tuple[float, float] | None:
        return self.blinks[k] if 0 <= k < self.n_frames and k == self.t else None

    def found(self) -> frozenset[int]:
        """The frames whose blink a marker finds (one marker per blink)."""
        return self.memo("found", lambda: frozenset(
            t for t in range(self.n_frames) if any(self._finds(m, t) for m in self.ann)))

    def _finds(self, marker, t: int) -> bool:
        u, v, mt = marker
        return mt == t and np.hypot(u - self.blinks[t][0], v - self.blinks[t][1]) <= MATCH_RADIUS

    def n_wrong(self) -> int:
        return len(self.ann) - len(self.found())

    def score(self) -> tuple[float, bool]:
        if not self.ann:
            return 0.0, False
        found = len(self.found())
        return (found / self.n_frames) * (found / len(self.ann)), found == self.n_frames == len(self.ann)


class BlinkAnnotator(Annotator, task=BlinkMarking):
    """Steps to the first frame whose blink is not marked and marks it; now and then steps back a
    frame to compare; undoes a wrong marker it notices; presses DONE when every blink is marked."""

    persona: BlinkPersona
    task: BlinkMarking

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # What it has itself seen and done: wrong markers it did not notice (it lives with them),
        # how often it has placed on each frame (a new attempt is a new decision), and the frames
        # after which it stepped back.
        self._left: set[tuple] = set()
        self._placed: dict[int, int] = {}
        self._stepped_back: set[int] = set()

    def next_intent(self) -> Intent:
        t, p = self.task, self.persona
        found = t.found()
        wrong = [m for m in t.ann if m not in self._left
                 and not (0 <= m[2] < t.n_frames and t._finds(m, m[2]))]
        if wrong:
            latest = t.ann[-1]
            if latest in wrong and not self.decide(("notice", latest), p.notice_rate):
                self._left.add(latest)
                return self.next_intent()
            # UNDO removes the latest marker; a good one above a wrong one is redone after.
            return self.press("UNDO", "correct", latest[2], correction=True)
        left_on = {m[2] for m in self._left}
        todo = [k for k in range(t.n_frames) if k not in found and k not in left_on]
        if not todo:
            return self.press("DONE", "finish")
        k = todo[0]
        just_marked = t.ann and t.ann[-1][2] == t.t and t.t in found
        if (just_marked and t.t > 0 and t.t not in self._stepped_back
                and self.decide(("step back", t.t), p.step_back_rate)):
            self._stepped_back.add(t.t)
            return self.press("-T", "verify", k)
        if t.t != k:
            return self.press("+T" if k > t.t else "-T", "navigate", k)
        attempt = self._placed.get(k, 0)
        self._placed[k] = attempt + 1
        u, v = t.blinks[k]
        if self.decide(("slip", k, attempt), p.slip_rate):
            ang = self.draw(("slip angle", k, attempt)).uniform(0, 2 * np.pi)
            return self.place(u + 3.5 * np.cos(ang), v + 3.5 * np.sin(ang), "place", k, sigma=0.0)
        return self.place(u, v, "place", k)
