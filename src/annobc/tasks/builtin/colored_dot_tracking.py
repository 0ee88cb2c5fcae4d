"""colored_dot_tracking: mark every dot of the requested colour at its brightest slice.

Analogue: marking puncta or nuclei in a 3D microscopy stack.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Iterator

import numpy as np

from annobc.gui import draw_mark
from annobc.tasks.textures import camera_noise
from annobc.tasks.annotator import Annotator, Intent
from annobc.tasks.base import Button, Effect, NO_EFFECT, Persona, Task

COLORS = {
    "RED": (255, 60, 50),
    "GREEN": (60, 235, 60),
    "BLUE": (70, 120, 255),
    "YELLOW": (245, 225, 40),
    "CYAN": (40, 225, 235),
    "MAGENTA": (235, 60, 235),
}
MARKER_COLOR = (255, 255, 255)
MATCH_XY = 2.0  # a marker matches a dot within this many data pixels, on the dot's peak slice
NOISE_BANK = 512


def noise_bank() -> np.ndarray:
    """A fixed field of unit-variance, slightly correlated noise (2x2 mean, like camera noise)."""
    return camera_noise(NOISE_BANK, 20261127)


@dataclass(frozen=True)
class Params:
    size: int = 112  # canvas data grid side, pixels
    n_slices: tuple[int, int] = (24, 32)
    n_targets: tuple[int, int] = (12, 18)
    n_distractors: tuple[int, int] = (2, 6)
    sigma_xy: tuple[float, float] = (1.5, 3.0)
    sigma_z: tuple[float, float] = (1.0, 2.0)
    amplitude: tuple[float, float] = (0.6, 1.0)
    noise: float = 7.0  # standard deviation of the background noise, grey levels
    min_separation: float = 7.0  # minimum xy distance between dot centres, pixels


@dataclass(frozen=True)
class DotPersona(Persona):
    notice_rate: float = 0.995
    order: str = "scan"  # "scan": by depth; "nearest": nearest dot next
    overshoot_rate: float = 1.0  # steps 1-2 slices past the brightest slice and comes back (TASKS.md)
    # It turns back one slice past the brightest once the dot there is visibly dimmer (by this
    # fraction of its peak), and steps a second slice past where it is not: what it does then
    # is what the screen shows, not a coin flip.
    visible_fade: float = 0.1
    slip_rate: float = 0.03  # places one slice off the brightest
    offcentre_rate: float = 0.012  # places 3-4 px off the centre
    distractor_rate: float = 0.012  # marks a dot of another colour
    mip_check_rate: float = 0.08  # after a placement, toggles MIP on and off to check
    final_check: bool = True  # toggles MIP at the end to verify before DONE
    # Scan order: after the deepest dot, steps on to the last slice to see that no dot is left
    # before the final check (the "sweeper" persona; tried for the demo and not kept, see
    # docs/training.md, seventh session).
    final_sweep: bool = False
    # Walking on through empty slices to a dot 5 or more slices on, looks in MIP on the way for
    # what is left (so that a check after empty slices does not by itself mean "done").
    gap_check_rate: float = 0.0


@dataclass
class Dot:
    x: float
    y: float
    z: float  # continuous depth of the centre
    peak: int  # brightest slice
    sigma_xy: float
    sigma_z: float
    amplitude: float
    color: str

    def brightness(self, z: float) -> float:
        """The dot's peak intensity on slice z (its z profile; the MIP shows it at ``peak``)."""
        return self.amplitude * np.exp(-0.5 * ((z - self.z) / self.sigma_z) ** 2)


class ColoredDotTracking(Task):
    """Mark every dot of the requested colour at its brightest z-slice.

    ## Description
    A stack of z-slices holds blurred 3D dots (3D Gaussians) of several colours over a noisy
    background. The status line names the requested colour. The annotator must find every dot of
    that colour and place a marker on it at the slice where it is brightest.

    ## Action Space
    A left click at a screen pixel. Buttons: ``+Z``, ``-Z`` (navigate), ``MIP`` (view: max-intensity
    projection on/off), ``UNDO``, ``DONE``. A canvas click places a marker at (x, y, current z).

    ## Observation Space
    The rendered screen: the current slice (or the MIP) with markers as crosses on their slice (all
    markers in MIP), the status lines ``FIND <COLOUR>  Z <z>/<Z-1>`` (in the requested colour) and
    ``MARKERS <n>  MIP ON|OFF``, and the MIP button highlighted while on.

    ## Rewards
    Zero until the episode ends, then the F1 score of markers against the requested dots (a match
    needs xy within 2 data pixels and the exact brightest slice).

    ## Episode End
    DONE terminates; the env's step cap truncates. Success: F1 = 1.

    ## Arguments
    See :class:`Params`: stack depth, number of target and distractor dots, dot sizes in xy and z,
    amplitude, noise, minimum separation.

    ## Version History
    - v0: initial version.
    - v1: the status line naming the requested colour is drawn in that colour.
    """

    task_id = "colored_dot_tracking"
    version = 1
    instruction = "Mark every dot of the requested colour at the slice where it is brightest."
    Params = Params
    buttons = (Button("+Z", "navigate"), Button("-Z", "navigate"), Button("MIP", "view"),
               Button("UNDO", "undo"), Button("DONE", "done"))
    personas = {
        "default": DotPersona(),
        "nearest": DotPersona(order="nearest", overshoot_rate=0.6, mip_check_rate=0.12),
        "careless": DotPersona(slip_rate=0.06, offcentre_rate=0.03, distractor_rate=0.03,
                               notice_rate=0.9, overshoot_rate=0.3, mip_check_rate=0.0),
        "sweeper": DotPersona(final_sweep=True, gap_check_rate=0.5),
    }
    # Human study on this task (TASKS.md): fractions of clicks per episode, and clicks per episode.
    reference_ranges = {
        "action_mix.navigate": (0.67, 0.78),
        "action_mix.place": (0.14, 0.23),
        "action_mix.view": (0.05, 0.10),
        "action_mix.undo": (0.006, 0.013),
        "correction_rate": (0.024, 0.076),
        "mean_length": (70, 120),
    }

    # -- scene ---------------------------------------------------------------------------------
    def setup(self, rng: np.random.Generator) -> None:
        p = self.params
        self.n_slices = int(rng.integers(p.n_slices[0], p.n_slices[1] + 1))
        self.color = str(rng.choice(list(COLORS)))
        others = [c for c in COLORS if c != self.color]
        n_t = int(rng.integers(p.n_targets[0], p.n_targets[1] + 1))
        n_d = int(rng.integers(p.n_distractors[0], p.n_distractors[1] + 1))
        xy = self._sample_positions(rng, n_t + n_d)
        dots = []
        for i, (x, y) in enumerate(xy):
            sz = float(rng.uniform(*p.sigma_z))
            # Centre within 0.2 of a slice so that one slice is visibly the brightest.
            peak = int(rng.integers(2, self.n_slices - 2))
            z = peak + float(rng.uniform(-0.2, 0.2))
            color = self.color if i < n_t else str(rng.choice(others))
            dots.append(Dot(x, y, z, peak, float(rng.uniform(*p.sigma_xy)), sz,
                            float(rng.uniform(*p.amplitude)), color))
        self.targets = dots[:n_t]
        self.distractors = dots[n_t:]
        self._noise_offsets = rng.integers(0, NOISE_BANK - p.size, (self.n_slices + 1, 2))
        # GUI state
        self.z = 0
        self.mip = False
        self.ann: tuple[tuple[float, float, int], ...] = ()  # markers (u, v, z)

    def _sample_positions(self, rng: np.random.Generator, n: int) -> list[tuple[float, float]]:
        p, margin = self.params, 6.0
        pts: list[tuple[float, float]] = []
        while len(pts) < n:
            cand = rng.uniform(margin, p.size - 1 - margin, 2)
            if all(np.hypot(cand[0] - a, cand[1] - b) >= p.min_separation for a, b in pts):
                pts.append((float(cand[0]), float(cand[1])))
        return pts

    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.params.size, self.params.size)

    # -- GUI state machine ----------------------------------------------------------------------
    def press_button(self, label: str) -> Effect:
        if label == "+Z":
            self.z = min(self.z + 1, self.n_slices - 1)
        elif label == "-Z":
            self.z = max(self.z - 1, 0)
        elif label == "MIP":
            self.mip = not self.mip
        return NO_EFFECT

    def click_canvas(self, u: float, v: float) -> Effect:
        self.checkpoint()
        before = self.n_wrong()
        self.ann = self.ann + ((u, v, self.z),)
        return Effect(annotated=True, wrong=self.n_wrong() > before)

    # -- rendering ------------------------------------------------------------------------------
    def view_key(self):
        return "mip" if self.mip else self.z

    def render_view(self, key) -> np.ndarray:
        p = self.params
        s = p.size
        acc = np.zeros((s, s, 3), np.float32)
        for d in self.targets + self.distractors:
            gz = d.brightness(d.peak if key == "mip" else key)
            if gz < 0.01:
                continue
            r = int(np.ceil(3 * d.sigma_xy))
            x0, x1 = max(int(d.x) - r, 0), min(int(d.x) + r + 2, s)
            y0, y1 = max(int(d.y) - r, 0), min(int(d.y) + r + 2, s)
            gx = np.exp(-0.5 * ((np.arange(x0, x1) - d.x) / d.sigma_xy) ** 2)
            gy = np.exp(-0.5 * ((np.arange(y0, y1) - d.y) / d.sigma_xy) ** 2)
            g = (gz * gy[:, None] * gx[None, :]).astype(np.float32)
            patch = acc[y0:y1, x0:x1]
            np.maximum(patch, g[:, :, None] * np.asarray(COLORS[d.color], np.float32), out=patch)
        # Each slice gets its own crop of a fixed noise bank (drawn per episode, per slice index), so
        # a slice looks the same whatever the visit order and no noise is generated per frame.
        oy, ox = self._noise_offsets[self.n_slices if key == "mip" else key]
        noise = noise_bank()[oy:oy + s, ox:ox + s]
        img = acc + (24.0 + noise * (p.noise * (1.4 if key == "mip" else 1.0)))[:, :, None]
        return np.clip(img, 0, 255).astype(np.uint8)

    def draw_overlays(self, canvas: np.ndarray, mapper) -> None:
        r = max(2, round(2 * mapper.pixel_size))
        for u, v, z in self.ann:
            if self.mip or z == self.z:
                x, y = mapper.to_canvas_px(u, v)
                draw_mark(canvas, x, y, MARKER_COLOR, "x", r)

    def status(self) -> tuple[str, ...]:
        return (f"FIND {self.color}  Z {self.z}/{self.n_slices - 1}",
                f"MARKERS {len(self.ann)}  MIP {'ON' if self.mip else 'OFF'}")

    def status_colors(self):
        # The requested colour's line is drawn in that colour, as annotation tools show a label's.
        return (COLORS[self.color], None)

    def selected(self) -> tuple[str, ...]:
        return ("MIP",) if self.mip else ()

    # -- latents and score ----------------------------------------------------------------------
    def position(self) -> float:
        return self.z / (self.n_slices - 1)

    def _match(self) -> int:
        return len(self.matched_targets())

    def matched_targets(self) -> frozenset[int]:
        """Indices of the target dots a marker matches."""
        return self.memo("match", self._compute_match)

    def _compute_match(self) -> frozenset[int]:
        """Greedy one-to-one matching of markers to target dots; returns the targets matched."""
        pairs = []
        for i, (u, v, z) in enumerate(self.ann):
            for j, d in enumerate(self.targets):
                dist = math.hypot(u - d.x, v - d.y)
                if z == d.peak and dist <= MATCH_XY:
                    pairs.append((dist, i, j))
        used_m, used_t = set(), set()
        for _, i, j in sorted(pairs):
            if i not in used_m and j not in used_t:
                used_m.add(i)
                used_t.add(j)
        return frozenset(used_t)

    def n_wrong(self) -> int:
        return len(self.ann) - self._match()

    def target_point(self, k: int) -> tuple[float, float] | None:
        return (self.targets[k].x, self.targets[k].y) if 0 <= k < len(self.targets) else None

    def target_offset(self, k: int) -> int | None:
        return self.z - self.targets[k].peak if 0 <= k < len(self.targets) else None

    def score(self) -> tuple[float, bool]:
        m = self._match()
        if not self.ann:
            return 0.0, False
        precision, recall = m / len(self.ann), m / len(self.targets)
        f1 = 0.0 if m == 0 else 2 * precision * recall / (precision + recall)
        return f1, m == len(self.targets) == len(self.ann)


class ColoredDotAnnotator(Annotator, task=ColoredDotTracking):
    """Surveys in MIP, visits the dots in depth order (or nearest first), overshoots and comes back."""

    persona: DotPersona
    task: ColoredDotTracking

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._seen_for: tuple | None = None  # next_intent's memory: the markers it began from,
        self._seen: set[int] = set()  # the slices seen since,
        self._came_from = 0  # the slice it was on then, and whether it has checked in MIP
        self._verified = False

    def script(self) -> Iterator[Intent]:
        order = self._order()
        # In MIP its target is the next dot it will do: an unmarked one (none at the final check).
        first = order[0] if order else -1
        yield self.press("MIP", "survey", first)
        yield self.press("MIP", "survey", first)
        yield from self._mark(order)

    def _mark(self, order: list[int]) -> Iterator[Intent]:
        """Mark the target dots in this order, checking in MIP now and then, and finish."""
        t, p = self.task, self.persona
        for i, k in enumerate(order):
            gap = t.targets[k].peak - t.z
            if gap >= 5 and self.chance(p.gap_check_rate):
                yield from self._goto(t.z + int(self.rng.integers(2, gap - 2)), "navigate", k)
                yield self.press("MIP", "verify", k)
                yield self.press("MIP", "verify", k)
            yield from self._do_dot(k, t.targets[k])
            if self.chance(p.mip_check_rate):
                after = order[i + 1] if i + 1 < len(order) else -1  # the next dot, still unmarked
                yield self.press("MIP", "verify", after)
                yield self.press("MIP", "verify", after)
        if p.final_sweep:
            yield from self._goto(t.n_slices - 1, "verify", -1)
        if p.final_check:
            yield self.press("MIP", "verify")
            yield self.press("MIP", "verify")
        yield self.press("DONE", "finish")

    def resume(self) -> Iterator[Intent]:
        """Take over a running episode: MIP off, UNDO until no marker is wrong, then the dots not
        yet marked, sweeping on from the current slice (then back for any left behind), and the
        same final check as :meth:`script`."""
        t = self.task
        if t.mip:
            yield self.press("MIP", "survey")
        for _ in range(len(t.ann)):  # UNDO removes the latest marker: at most one per marker
            if not t.n_wrong():
                break
            yield self.press("UNDO", "correct", -1, True)
        yield from self._mark(self._remaining())

    def _remaining(self) -> list[int]:
        """The requested dots no marker matches yet, in the order this annotator would do them
        from the current slice: on from here, then back for any left behind."""
        t = self.task
        done = t.matched_targets()
        left = [k for k in self._order() if k not in done]
        ahead = [k for k in left if t.targets[k].peak >= t.z]
        behind = sorted((k for k in left if t.targets[k].peak < t.z),
                        key=lambda k: (-t.targets[k].peak, t.targets[k].y))
        return ahead + behind

    def next_intent(self) -> Intent:
        """The next click from any state, as :meth:`resume` would begin, but deterministic in what
        it does: UNDO while a marker is wrong; once every dot is matched, the persona's sweep to the
        last slice, a check in MIP and DONE; otherwise MIP off,
        towards the next dot's brightest slice, one slice past it (the overshoot: it places only
        after seeing that the next slice is dimmer), back, and a click on the dot's centre. It
        remembers the slices seen since the markers last changed, as a person would."""
        t, p = self.task, self.persona
        if t.ann != self._seen_for:  # a marker came or went: a new dot begins from here
            self._seen_for, self._seen, self._came_from = t.ann, set(), t.z
            self._verified = False
        self._seen.add(t.z)
        if t.n_wrong():
            return self.press("UNDO", "correct", -1, True)
        left = self._remaining()
        if not left:  # as the script ends: to the last slice, MIP on to see every marker, off, DONE
            if p.final_sweep and not t.mip and not self._verified and t.z < t.n_slices - 1:
                return self.press("+Z", "verify")
            if t.mip:
                self._verified = True
                return self.press("MIP", "verify")
            return self.press("DONE", "finish") if self._verified else self.press("MIP", "verify")
        if t.mip:
            return self.press("MIP", "survey")
        k = left[0]
        peak = t.targets[k].peak
        if t.z != peak:
            return self.press("+Z" if peak > t.z else "-Z", "navigate", k)
        direction = 1 if peak >= self._came_from else -1
        past = int(np.clip(peak + direction, 0, t.n_slices - 1))
        if past != peak and past not in self._seen:
            return self.press("+Z" if direction > 0 else "-Z", "inspect", k)
        return self.place(t.targets[k].x, t.targets[k].y, "place", k, sigma=0.0)

    def _order(self) -> list[int]:
        t = self.task
        if self.persona.order == "scan":
            return sorted(range(len(t.targets)), key=lambda k: (t.targets[k].peak, t.targets[k].y))
        order, z, left = [], 0, set(range(len(t.targets)))
        while left:  # nearest in depth first, ties broken by screen order
            k = min(left, key=lambda k: (abs(t.targets[k].peak - z), t.targets[k].y))
            order.append(k)
            left.remove(k)
            z = t.targets[k].peak
        return order

    def _steps_past(self, dot: Dot, direction: int) -> int:
        """1, or 2 where the slice one past the brightest is not visibly dimmer than it."""
        fade = 1 - dot.brightness(dot.peak + direction) / dot.brightness(dot.peak)
        return 1 if fade > self.persona.visible_fade else 2

    def _goto(self, z: int, phase: str, k: int, correction: bool = False) -> Iterator[Intent]:
        while self.task.z != z:
            label = "+Z" if z > self.task.z else "-Z"
            yield self.press(label, phase, k, correction)

    def _do_dot(self, k: int, dot: Dot) -> Iterator[Intent]:
        t, p = self.task, self.persona
        direction = 1 if dot.peak >= t.z else -1
        # Decide now what goes wrong with this dot, if anything.
        roll = self.rng.random()
        slip = roll < p.slip_rate
        offcentre = not slip and roll < p.slip_rate + p.offcentre_rate
        distractor = (not slip and not offcentre and t.distractors
                      and roll < p.slip_rate + p.offcentre_rate + p.distractor_rate)
        if distractor:
            # Marks the nearest distractor instead, at its own brightest slice, then carries on.
            wrong = min(t.distractors, key=lambda d: np.hypot(d.x - dot.x, d.y - dot.y))
            yield from self._goto(wrong.peak, "navigate", k)
            yield self.place(wrong.x, wrong.y, "place", k)
            if self.chance(p.notice_rate):
                yield self.press("MIP", "verify", k)
                yield self.press("MIP", "verify", k)
                yield self.press("UNDO", "correct", k, True)
            direction = 1 if dot.peak >= t.z else -1
        yield from self._goto(dot.peak, "navigate", k)
        if self.chance(p.overshoot_rate):
            lo, hi = 0, t.n_slices - 1
            past = int(np.clip(dot.peak + direction * self._steps_past(dot, direction), lo, hi))
            yield from self._goto(past, "inspect", k)
            yield from self._goto(dot.peak, "inspect", k)
        if slip:
            # Stopped one slice short of (or past) the brightest slice and placed there.
            off = int(np.clip(dot.peak - direction, 0, t.n_slices - 1))
            yield from self._goto(off, "navigate", k)
            yield self.place(dot.x, dot.y, "place", k)
            if self.chance(p.notice_rate):
                yield from self._goto(dot.peak, "inspect", k)  # the neighbour is brighter
                yield self.press("UNDO", "correct", k, True)
                yield self.place(dot.x, dot.y, "correct", k, True)
            return
        if offcentre:
            ang = self.rng.uniform(0, 2 * np.pi)
            dist = self.rng.uniform(3.0, 4.0)
            yield self.place(dot.x + dist * np.cos(ang), dot.y + dist * np.sin(ang), "place", k,
                             sigma=0.0)
            if self.chance(p.notice_rate):
                yield self.press("UNDO", "correct", k, True)
                yield self.place(dot.x, dot.y, "correct", k, True)
            return
        yield self.place(dot.x, dot.y, "place", k)
