"""colored_dot_tracking: mark every dot of the requested colour at its brightest slice.

Analogue: marking puncta or nuclei in a 3D microscopy stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
import math
from typing import ClassVar

import numpy as np

from annobc.gui.raster import mark_pixels
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
NEIGHBOUR_COLOR = (140, 140, 140)  # a marker on the slice above or below, drawn faintly
MATCH_XY = 2.0  # a marker matches a dot within this many data pixels, on the dot's peak slice
MISS_XY = 5.0  # a wrong marker this close to a dot was meant for it (a slip, an off-centre click)
NOISE_BANK = 512
_NO_PIXELS = (np.zeros(0, np.intp), np.zeros(0, np.intp))


def noise_bank() -> np.ndarray:
    """A fixed field of unit-variance, slightly correlated noise (2x2 mean, like camera noise)."""
    return camera_noise(NOISE_BANK, 20261127)


@lru_cache(maxsize=2)
def _background(sigma: float) -> np.ndarray:
    """The whole noise bank as slice backgrounds, 24 + noise * sigma (float32, as a slice's crop
    computed it), in three channels: added to a slice's dots without a broadcast over channels,
    which costs numpy several times a plain add. Read-only, 3 MB per noise level (a scene uses
    two: its slices and its MIP)."""
    grey = np.repeat((24.0 + noise_bank() * sigma)[:, :, None], 3, axis=2)
    grey.flags.writeable = False
    return grey


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
    overshoot_rate: float = 1.0  # steps 1-2 slices past the brightest slice and comes back
    # It turns back one slice past the brightest once the dot there is visibly dimmer (by this
    # fraction of its peak), and steps a second slice past where it is not: what it does then
    # is what the screen shows, not a coin flip.
    visible_fade: float = 0.1
    slip_rate: float = 0.03  # places one slice off the brightest
    offcentre_rate: float = 0.012  # places 3-4 px off the centre
    distractor_rate: float = 0.012  # marks a dot of another colour
    # After a placement, toggles MIP on and off to check: at a coin's rate, or (check_every > 0,
    # the default) after the placement that brings the count to a multiple of check_every, which
    # the status line shows (``MARKERS 6/N``).
    mip_check_rate: float = 0.0
    check_every: int = 6
    final_check: bool = True  # turns MIP on at the end to verify, and presses DONE in it
    # Scan order: after the deepest dot, steps on to the last slice to see that no dot is left
    # before the final check (the "sweeper" persona; its measured effect: docs/experiments.md).
    final_sweep: bool = False
    # Walking on through empty slices to a dot 5 or more slices on, looks in MIP on the way for
    # what is left (so that a check after empty slices does not by itself mean "done").
    gap_check_rate: float = 0.0

    MISTAKE_FIELDS: ClassVar[tuple[str, ...]] = Persona.MISTAKE_FIELDS + (
        "slip_rate", "offcentre_rate", "distractor_rate")
    NOTICE_FIELDS: ClassVar[tuple[str, ...]] = Persona.NOTICE_FIELDS


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
    markers in MIP) and the markers of the slices just above and below as faint grey plus signs,
    the status lines ``FIND <COLOUR>  Z <z>/<Z-1>`` (in the requested colour) and
    ``MARKERS <n>/<N>  MIP ON|OFF`` (N: the number of requested dots), and the MIP button
    highlighted while on.

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
    - v2: the annotator is a policy of the state (``next_intent``), its decisions keyed per dot;
      a slip is placed on the first slice next to the brightest that it reaches.
    - v3: the status shows the total, ``MARKERS <n>/<N>``; markers on the neighbouring slices are
      drawn faintly. The default annotator decides on what the screen shows: a MIP check after
      the placement that brings the count to a multiple of 6 (no coin), the final check turns MIP
      on and presses DONE in it, and UNDO is pressed only where the marker it removes is drawn
      (on its slice, next to it, or in the MIP), so a slip is undone from the brightest slice.
      The DONE button is drawn lit while the status shows ``MARKERS N/N`` (``complete()``).
    """

    task_id = "colored_dot_tracking"
    version = 3
    instruction = "Mark every dot of the requested colour at the slice where it is brightest."
    Params = Params
    buttons = (Button("+Z", "navigate"), Button("-Z", "navigate"), Button("MIP", "view"),
               Button("UNDO", "undo"), Button("DONE", "done"))
    personas = {
        "default": DotPersona(),
        "nearest": DotPersona(order="nearest", overshoot_rate=0.6, mip_check_rate=0.12,
                              check_every=0),
        "careless": DotPersona(slip_rate=0.06, offcentre_rate=0.03, distractor_rate=0.03,
                               notice_rate=0.9, overshoot_rate=0.3, check_every=0),
        "sweeper": DotPersona(final_sweep=True, gap_check_rate=0.5, mip_check_rate=0.08,
                              check_every=0),
    }
    # Human study on this task: fractions of clicks per episode, and clicks per episode.
    reference_ranges = {
        "action_mix.navigate": (0.67, 0.78),
        "action_mix.place": (0.14, 0.23),
        "action_mix.view": (0.05, 0.10),
        "action_mix.undo": (0.006, 0.013),
        "correction_rate": (0.024, 0.076),
        "mean_length": (70, 120),
    }
    # The expert presses UNDO as soon as a wrong marker stands where it is drawn (on its slice or
    # next to it, or in the MIP; else it steps there first), and UNDO removes the latest
    # marker: one click (each marker placed on top of a wrong one costs one UNDO more).
    correction_length = 1

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

    def canvas_key(self):
        return (self.view_key(), self.ann)  # the markers shown depend on the view and the markers

    def render_view(self, key) -> np.ndarray:
        p = self.params
        s = p.size
        ys, xs, gy, gx3, cols3, reach, amps = self._dot_stamps()
        dots = self.targets + self.distractors
        # Only dots within reach of the slice can reach the 0.01 cut: the others' brightness is
        # not computed at all. Those that are get Dot.brightness's exponent, in Python floats as
        # there, and one np.exp over all of them (the same float64 exp, element by element).
        near, args = [], []
        for i, d in enumerate(dots):
            z = d.peak if key == "mip" else key
            if abs(z - d.z) <= reach[i]:
                near.append(i)
                args.append(-0.5 * ((z - d.z) / d.sigma_z) ** 2)
        gz = amps[near] * np.exp(np.array(args)) if near else np.zeros(0)
        keep = gz >= 0.01
        vis = [i for i, k in zip(near, keep.tolist()) if k]
        gzs = gz[keep]
        acc = np.zeros((s, s * 3), np.float32)  # (s, s, 3) with each row's pixels side by side
        if vis:
            # Every visible dot's patch at once, by the same operations per element as one by
            # one: (gz * gy) * gx in float64, to float32, times the colour. gx and the colour come
            # with each value repeated for the three channels, so no broadcast runs over them.
            g = ((gzs[:, None] * gy[vis])[:, :, None] * gx3[vis][:, None, :]).astype(np.float32)
            g *= cols3[vis][:, None, :]
            for k, i in enumerate(vis):
                (y0, y1), (x0, x1) = ys[i], xs[i]
                patch = acc[y0:y1, 3 * x0:3 * x1]
                np.maximum(patch, g[k, :y1 - y0, :3 * (x1 - x0)], out=patch)
        acc = acc.reshape(s, s, 3)
        # Each slice gets its own crop of a fixed noise bank (drawn per episode, per slice index), so
        # a slice looks the same whatever the visit order and no noise is generated per frame.
        oy, ox = self._noise_offsets[self.n_slices if key == "mip" else key]
        grey = _background(p.noise * (1.4 if key == "mip" else 1.0))[oy:oy + s, ox:ox + s]
        img = np.add(acc, grey, out=acc)
        return np.clip(img, 0, 255, out=img).astype(np.uint8)

    def _dot_stamps(self):
        """Per dot, what does not depend on the slice (computed once per episode, as render_view
        computed it per slice): its patch rows and columns, gy and gx (float64, padded to one
        width; gx and the colour repeated per channel), and how far in z it can be seen at all."""
        st = self.__dict__.get("_stamp_cache")
        if st is not None:
            return st
        s = self.params.size
        dots = self.targets + self.distractors
        ys, xs, gys, gxs, reach = [], [], [], [], []
        for d in dots:
            r = int(np.ceil(3 * d.sigma_xy))
            x0, x1 = max(int(d.x) - r, 0), min(int(d.x) + r + 2, s)
            y0, y1 = max(int(d.y) - r, 0), min(int(d.y) + r + 2, s)
            gxs.append(np.exp(-0.5 * ((np.arange(x0, x1) - d.x) / d.sigma_xy) ** 2))
            gys.append(np.exp(-0.5 * ((np.arange(y0, y1) - d.y) / d.sigma_xy) ** 2))
            xs.append((x0, x1))
            ys.append((y0, y1))
            # brightness(z) < 0.01 wherever 0.5 ((z - d.z) / sigma_z)^2 > log(amplitude / 0.01):
            # beyond this reach (with a margin) the dot is certainly under the cut.
            lim = math.log(d.amplitude / 0.01) + 0.1 if d.amplitude > 0 else -1.0
            reach.append(d.sigma_z * math.sqrt(2 * lim) if lim > 0 else -1.0)
        n = max((len(g) for g in gys + gxs), default=1)
        gy = np.zeros((len(dots), n))
        gx = np.zeros((len(dots), n))
        for i, (a, b) in enumerate(zip(gys, gxs)):
            gy[i, :len(a)] = a
            gx[i, :len(b)] = b
        cols = np.array([COLORS[d.color] for d in dots], np.float32).reshape(len(dots), 1, 3)
        gx3 = np.repeat(gx, 3, axis=1)  # (dots, 3 n): each value once per channel
        cols3 = np.tile(cols, (1, n, 1)).reshape(len(dots), 3 * n)  # the colour at every pixel
        amps = np.array([d.amplitude for d in dots], np.float64)
        st = self._stamp_cache = (ys, xs, gy, gx3, cols3, reach, amps)
        return st

    def draw_overlays(self, canvas: np.ndarray, mapper) -> None:
        # All markers shown are one colour: their pixels, gathered once per view while the
        # markers stand, go on in one assignment (the same pixels as one mark after another).
        # On a slice, the markers of the slices above and below are drawn faintly (a +, under
        # this slice's), as stack viewers show neighbouring annotations.
        faint, own = self.memo(("overlay", self.view_key(), mapper, canvas.shape),
                               lambda: self._marker_pixels(mapper, *canvas.shape[:2]))
        if len(faint[0]):
            canvas[faint] = NEIGHBOUR_COLOR
        canvas[own] = MARKER_COLOR

    def _marker_pixels(self, mapper, h: int, w: int) -> tuple[tuple, tuple]:
        r = max(2, round(2 * mapper.pixel_size))
        faint = [mark_pixels("cross", r, *mapper.to_canvas_px(u, v), h, w)
                 for u, v, z in self.ann if not self.mip and abs(z - self.z) == 1]
        own = [mark_pixels("x", r, *mapper.to_canvas_px(u, v), h, w)
               for u, v, z in self.ann if self.mip or z == self.z]
        return self._joined(faint), self._joined(own)

    @staticmethod
    def _joined(marks: list) -> tuple[np.ndarray, np.ndarray]:
        if not marks:
            return _NO_PIXELS
        return np.concatenate([m[0] for m in marks]), np.concatenate([m[1] for m in marks])

    def status(self) -> tuple[str, ...]:
        return (f"FIND {self.color}  Z {self.z}/{self.n_slices - 1}",
                f"MARKERS {len(self.ann)}/{len(self.targets)}  MIP {'ON' if self.mip else 'OFF'}")

    def status_colors(self):
        # The requested colour's line is drawn in that colour, as annotation tools show a label's.
        return (COLORS[self.color], None)

    def selected(self) -> tuple[str, ...]:
        return ("MIP",) if self.mip else ()

    def complete(self) -> bool:
        return len(self.ann) >= len(self.targets)  # MARKERS N/N

    # -- latents and score ----------------------------------------------------------------------
    def position(self) -> float:
        return self.z / (self.n_slices - 1)

    def marker_targets(self) -> tuple[int, ...]:
        """Per marker, the target dot it matches, or -1 (a wrong marker): greedy one-to-one
        matching, closest pairs first."""
        return self.memo("match", self._compute_match)

    def _compute_match(self) -> tuple[int, ...]:
        by_peak = self.__dict__.get("_targets_by_peak")
        if by_peak is None:  # a marker can only match a target whose brightest slice it is on
            by_peak = self._targets_by_peak = {}
            for j, d in enumerate(self.targets):
                by_peak.setdefault(d.peak, []).append((j, d))
        pairs = []
        for i, (u, v, z) in enumerate(self.ann):
            for j, d in by_peak.get(z, ()):
                dist = math.hypot(u - d.x, v - d.y)
                if dist <= MATCH_XY:
                    pairs.append((dist, i, j))
        match = [-1] * len(self.ann)
        used_t = set()
        for _, i, j in sorted(pairs):
            if match[i] < 0 and j not in used_t:
                match[i] = j
                used_t.add(j)
        return tuple(match)

    def matched_targets(self) -> frozenset[int]:
        """Indices of the target dots a marker matches."""
        return frozenset(j for j in self.marker_targets() if j >= 0)

    def n_wrong(self) -> int:
        return self.marker_targets().count(-1)

    def target_point(self, k: int) -> tuple[float, float] | None:
        return (self.targets[k].x, self.targets[k].y) if 0 <= k < len(self.targets) else None

    def target_offset(self, k: int) -> int | None:
        return self.z - self.targets[k].peak if 0 <= k < len(self.targets) else None

    def score(self) -> tuple[float, bool]:
        m = len(self.matched_targets())
        if not self.ann:
            return 0.0, False
        precision, recall = m / len(self.ann), m / len(self.targets)
        f1 = 0.0 if m == 0 else 2 * precision * recall / (precision + recall)
        return f1, m == len(self.targets) == len(self.ann)


Marker = tuple[float, float, int]


@dataclass
class Mistake:
    """One of the annotator's own wrong markers that it has noticed, until it is removed."""

    kind: str  # "slip", "offcentre" or "distractor"
    dot: int  # the requested dot it was working on
    marker: Marker


class ColoredDotAnnotator(Annotator, task=ColoredDotTracking):
    """The expert as a policy of the stack's state.

    From any state: UNDO while a wrong marker stands (one it has not decided to leave); MIP off
    unless it is looking at the MIP for a reason (the survey at the start, a check after a
    placement, a check in a long gap, the final check: DONE in the MIP); otherwise the next requested dot no
    marker matches (on up the stack from the current slice, then back for any left behind; or the
    nearest in depth): towards its brightest slice, past it by a slice or two (the overshoot: it
    places only once the screen has shown the dot fading), back, a click on its centre. With no
    dot left, the final check and DONE.

    Its memory is what it has seen: the slices seen while working on the current dot, the MIP
    looks made, its own wrong markers (noticed ones until removed, unnoticed ones left standing).
    Its deliberate mistakes (a slip to a neighbouring slice, an off-centre click, a distractor
    marked) and their noticing are decided per dot with :meth:`decide`.
    """

    persona: DotPersona
    task: ColoredDotTracking

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._last_ann: tuple[Marker, ...] = ()  # the markers at the previous call
        self._looked: set[tuple] = set()  # the occasions it has looked at the MIP for
        self._look: tuple | None = None  # the occasion of the MIP view now open
        self._placed: tuple[Marker, int] | None = None  # the latest marker it saw land on a dot
        self._dot: int | None = None  # the dot it is working on,
        self._came_from = 0  # the slice it was on when it took it up,
        self._seen: set[int] = set()  # the slices seen since,
        self._gap_z: int | None = None  # and where it will check in MIP on the way there
        self._erred: set[int] = set()  # dots whose deliberate mistake has been made
        self._pending: tuple[str, int] | None = None  # a mistake clicked, not yet seen standing
        self._mistake: Mistake | None = None  # its noticed wrong marker, until removed
        self._left: dict[Marker, int] = {}  # its unnoticed wrong markers, with the dot of each

    def next_intent(self) -> Intent:
        self._observe()
        return (self._noticing() or self._correction() or self._mip_view() or self._work()
                or self._finish())

    # -- memory -------------------------------------------------------------------------------
    def _observe(self) -> None:
        """Take in the state: a marker that appeared, the slice, an open MIP view."""
        t = self.task
        ann, last = t.ann, self._last_ann
        appended = len(ann) == len(last) + 1 and ann[:-1] == last
        if appended and t.marker_targets()[-1] >= 0:
            self._placed = (ann[-1], t.marker_targets()[-1])
        if self._pending is not None:
            kind, k = self._pending
            self._pending = None
            if appended:
                self._erred.add(k)
                if self.decide(("notice", k), self.persona.notice_rate):
                    self._mistake = Mistake(kind, k, ann[-1])
                else:
                    self._left[ann[-1]] = k
        if self._mistake is not None and not (ann and ann[-1] == self._mistake.marker):
            self._mistake = None  # removed, or buried under someone else's: act from the state
        self._last_ann = ann
        self._seen.add(t.z)
        if t.mip:
            occasion = self._wanted_look()
            if occasion is not None:
                self._looked.add(occasion)
                self._look = occasion
        else:
            self._look = None

    def _remaining(self) -> list[int]:
        """The requested dots still to mark: no marker matches them, and it has not left a wrong
        marker on them believing them done."""
        t = self.task
        standing = set(t.ann)
        done = t.matched_targets() | {k for m, k in self._left.items() if m in standing}
        return [k for k in range(len(t.targets)) if k not in done]

    def _current_dot(self) -> int | None:
        """The dot it is working on, taking up the next one when that is marked."""
        left = self._remaining()
        if not left:
            self._dot = None
        elif self._dot not in left:
            self._take_up(self._next_dot(left))
        return self._dot

    def _next_dot(self, left: list[int]) -> int:
        t, z = self.task, self.task.z
        if self.persona.order == "nearest":
            return min(left, key=lambda k: (abs(t.targets[k].peak - z), t.targets[k].y))
        # Scan: on up the stack from here in depth order, then back down for any left behind.
        return min(left, key=lambda k: (t.targets[k].peak < z, abs(t.targets[k].peak - z),
                                        t.targets[k].y))

    def _take_up(self, k: int) -> None:
        t, p = self.task, self.persona
        self._dot, self._came_from, self._seen = k, t.z, {t.z}
        gap = t.targets[k].peak - t.z
        self._gap_z = None
        if gap >= 5 and self.decide(("gap", k), p.gap_check_rate):
            self._gap_z = t.z + int(self.draw(("gap slice", k)).integers(2, gap - 2))

    # -- the policy ---------------------------------------------------------------------------
    def _noticing(self) -> Intent | None:
        """What shows it a mistake it has noticed, before it undoes it: the brighter slice next to
        a slip, the MIP for a dot of the wrong colour (an off-centre click shows at once)."""
        m = self._mistake
        if m is None:
            return None
        if m.kind == "slip" and self.task.z != self.task.targets[m.dot].peak:
            return self._step(self.task.targets[m.dot].peak, "inspect", m.dot)
        if m.kind == "distractor" and ("notice", m.dot) not in self._looked:
            return self.press("MIP", "verify", m.dot)
        return None

    def _correction(self) -> Intent | None:
        """UNDO while a wrong marker stands that it has not left: UNDO removes the latest marker,
        so one below it takes the good ones above it too (they are marked again)."""
        t = self.task
        if not any(j < 0 and m not in self._left for m, j in zip(t.ann, t.marker_targets())):
            return None
        # UNDO where what it removes is drawn: on the latest marker's slice or next to it (drawn
        # faintly there), or in the MIP.
        z = t.ann[-1][2]
        if not t.mip and abs(z - t.z) > 1:
            return self.press("+Z" if z > t.z else "-Z", "correct", self._meant_for_latest(), True)
        return self.press("UNDO", "correct", self._meant_for_latest(), correction=True)

    def _meant_for_latest(self) -> int:
        """The dot the latest marker is for: the one it matches, or that it was meant for."""
        t = self.task
        j = t.marker_targets()[-1]
        if j >= 0:
            return j
        if self._mistake is not None:
            return self._mistake.dot
        u, v, _ = t.ann[-1]
        dist = [math.hypot(u - d.x, v - d.y) for d in t.targets]
        k = int(np.argmin(dist))
        return k if dist[k] <= MISS_XY else -1

    def _wanted_look(self) -> tuple | None:
        """The occasion it wants the MIP for in this state, if any."""
        t, p = self.task, self.persona
        if ("survey",) not in self._looked:
            return ("survey",)
        m = self._mistake
        if m is not None and m.kind == "distractor" and ("notice", m.dot) not in self._looked:
            return ("notice", m.dot)
        k = self._current_dot()
        if k is None:  # the final check stands in for a check after the last placement
            at_end = not p.final_sweep or t.z == t.n_slices - 1
            wanted = p.final_check and at_end and ("final",) not in self._looked
            return ("final",) if wanted else None
        if self._placed is not None and t.ann and t.ann[-1] == self._placed[0]:
            if p.check_every > 0:  # the count the status line shows
                n = len(t.ann)
                if n % p.check_every == 0 and ("check", n) not in self._looked:
                    return ("check", n)
            else:
                j = self._placed[1]
                if ("check", j) not in self._looked and self.decide(("check", j), p.mip_check_rate):
                    return ("check", j)
        return ("gap", k) if self._gap_z == t.z and ("gap", k) not in self._looked else None

    def _mip_view(self) -> Intent | None:
        """MIP off once it has looked (or found it on), on where it wants a look."""
        occasion = self._look if self.task.mip else self._wanted_look()
        if not self.task.mip and occasion is None:
            return None
        if self.task.mip and occasion == ("final",):  # every dot marked, the MIP shows it: DONE
            return self.press("DONE", "finish")
        # A look's target is the dot it shows: the one noticed wrong, else the next to do.
        if occasion is not None and occasion[0] == "notice":
            target = occasion[1]
        else:
            target = self._current_dot()
        phase = "survey" if occasion in (None, ("survey",)) else "verify"
        return self.press("MIP", phase, -1 if target is None else target)

    def _work(self) -> Intent | None:
        """The next click on the current dot: to its brightest slice, past it, back, place."""
        k = self._current_dot()
        if k is None:
            return None
        t, p = self.task, self.persona
        dot = t.targets[k]
        mistake = None if k in self._erred else self._mistake_for(k)
        if mistake == "distractor":  # marks the nearest dot of another colour instead
            wrong = min(t.distractors, key=lambda d: math.hypot(d.x - dot.x, d.y - dot.y))
            if t.z != wrong.peak:
                return self._step(wrong.peak, "navigate", k)
            return self._mistaken("distractor", k, self.place(wrong.x, wrong.y, "place", k))
        if mistake == "slip" and abs(t.z - dot.peak) == 1:  # places on the first neighbour reached
            return self._mistaken("slip", k, self.place(dot.x, dot.y, "place", k))
        direction = 1 if dot.peak >= self._came_from else -1
        past = int(np.clip(dot.peak + direction * self._steps_past(dot, direction),
                           0, t.n_slices - 1))
        if past not in self._seen and self.decide(("overshoot", k), p.overshoot_rate):
            return self._step(past, "inspect" if dot.peak in self._seen else "navigate", k)
        if t.z != dot.peak:
            return self._step(dot.peak, "inspect" if past in self._seen else "navigate", k)
        if mistake == "offcentre":
            g = self.draw(("offcentre", k))
            angle, dist = g.uniform(0, 2 * np.pi), g.uniform(3.0, 4.0)
            return self._mistaken("offcentre", k, self.place(
                dot.x + dist * np.cos(angle), dot.y + dist * np.sin(angle), "place", k, sigma=0.0))
        return self.place(dot.x, dot.y, "place", k)

    def _finish(self) -> Intent:
        """Every dot marked: the sweeper's walk to the last slice, then DONE (with the final
        check, DONE is pressed in the MIP, see :meth:`_mip_view`)."""
        t = self.task
        if self.persona.final_sweep and ("final",) not in self._looked and t.z < t.n_slices - 1:
            return self.press("+Z", "verify")
        return self.press("DONE", "finish")

    # -- helpers ------------------------------------------------------------------------------
    def _mistake_for(self, k: int) -> str | None:
        """What goes wrong with dot ``k``, if anything (one draw per dot)."""
        p = self.persona
        roll = self.draw(("mistake", k)).random()
        if roll < p.slip_rate:
            return "slip"
        if roll < p.slip_rate + p.offcentre_rate:
            return "offcentre"
        if roll < p.slip_rate + p.offcentre_rate + p.distractor_rate and self.task.distractors:
            return "distractor"
        return None

    def _mistaken(self, kind: str, k: int, intent: Intent) -> Intent:
        self._pending = (kind, k)
        return intent

    def _step(self, z: int, phase: str, k: int) -> Intent:
        return self.press("+Z" if z > self.task.z else "-Z", phase, k)

    def _steps_past(self, dot: Dot, direction: int) -> int:
        """1, or 2 where the slice one past the brightest is not visibly dimmer than it."""
        fade = 1 - dot.brightness(dot.peak + direction) / dot.brightness(dot.peak)
        return 1 if fade > self.persona.visible_fade else 2
