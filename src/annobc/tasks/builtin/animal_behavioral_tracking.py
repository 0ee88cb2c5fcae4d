"""animal_behavioral_tracking: mark front and back of every animal in every frame, keeping identities.

Analogue: multi-animal tracking for behaviour analysis (an open-field arena filmed from above, with
identities labelled by hand in the style of multi-animal pose-tracking tools).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from annobc.gui.raster import interleave, mark_offsets
from annobc.tasks.textures import camera_noise
from annobc.tasks.annotator import Annotator, Intent
from annobc.tasks.base import Button, Effect, NO_EFFECT, Persona, Task

MAX_ANIMALS = 3
ANIMAL_LABELS = tuple(f"A{k + 1}" for k in range(MAX_ANIMALS))
MARKERS = ("FRONT", "BACK")
# Identity colours: the paint tags of frame 0 and every marker of that identity.
ID_COLORS = ((240, 50, 40), (40, 215, 60), (40, 130, 255))
MARKER_SHAPES = ("cross", "x")  # FRONT, BACK
PREV_ALPHA = 0.5  # the previous frame's markers are drawn faintly
MATCH_PX = 3.0  # a marker matches within this many data pixels
SUCCESS_SCORE = 0.9
NOISE_BANK = 256

FLOOR = np.array((198.0, 197.0, 190.0), np.float32)
WALL = np.array((92.0, 96.0, 104.0), np.float32)
FUR = np.array((50.0, 48.0, 48.0), np.float32)
EAR = np.array((112.0, 88.0, 90.0), np.float32)
TAIL = np.array((150.0, 122.0, 118.0), np.float32)

# Animal geometry along the body axis, in units of body length (nose tip to tail base).
FRONT_AT, BACK_AT = 0.50, -0.44  # ground-truth front (snout) and back (tail base)
BODY_C, BODY_A, BODY_B = -0.06, 0.40, 0.21
HEAD_C, HEAD_A, HEAD_B = 0.33, 0.21, 0.15
EAR_AX, EAR_AY, EAR_R = 0.25, 0.15, 0.075
TAIL_LEN = 0.75
_TAIL_S = np.linspace(0.0, 1.0, 24)


def noise_bank() -> np.ndarray:
    """A fixed field of unit-variance, slightly correlated camera noise."""
    return camera_noise(NOISE_BANK, 20260131)


@lru_cache(maxsize=4)
def floor_image(size: int, wall: int) -> np.ndarray:
    """The empty arena seen from above: a lit floor with faint texture inside a darker wall."""
    g = np.random.default_rng(977).normal(0.0, 1.0, (size // 4 + 2, size // 4 + 2)).astype(np.float32)
    tex = np.kron(g, np.ones((4, 4), np.float32))[:size, :size]
    k = np.ones(5, np.float32) / 5  # smooth the blocky texture into soft stains
    tex = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, tex)
    tex = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 0, tex)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = (size - 1) / 2
    light = 1.0 - 0.10 * (((xx - c) ** 2 + (yy - c) ** 2) / c ** 2)  # brighter in the middle
    img = FLOOR[None, None, :] * light[:, :, None] + 4.0 * tex[:, :, None]
    # Walls: a band around the floor, lit from the inside edge, with a shadow cast on the floor.
    d = np.minimum(np.minimum(xx, yy), np.minimum(size - 1 - xx, size - 1 - yy))
    in_wall = d < wall
    shade = (0.75 + 0.35 * d / wall)[:, :, None]
    img = np.where(in_wall[:, :, None], WALL[None, None, :] * shade, img)
    shadow = np.clip(1.0 - (d - wall) / 3.0, 0.0, 1.0) * (~in_wall)
    img *= (1.0 - 0.18 * shadow)[:, :, None]
    return img.astype(np.float32)


@lru_cache(maxsize=4)
def _planar_floor(size: int, wall: int) -> np.ndarray:
    """floor_image channel by channel, (3, size, size); read-only."""
    img = np.ascontiguousarray(floor_image(size, wall).transpose(2, 0, 1))
    img.flags.writeable = False
    return img


@dataclass(frozen=True)
class Params:
    size: int = 112  # canvas data grid side, pixels
    n_animals: tuple[int, int] = (2, 3)
    n_frames: tuple[int, int] = (5, 8)
    body_length: tuple[float, float] = (16.0, 19.0)  # nose to tail base, pixels
    speed: tuple[float, float] = (2.0, 6.0)  # body displacement per frame, pixels
    max_turn: float = 0.6  # largest heading change per frame, radians
    wall: int = 6  # wall thickness, pixels
    encounter: float = 11.0  # two animals meet closer than this (body to body) at least once
    min_gap: float = 6.0  # bodies never come closer than this (axis to axis), pixels
    id_margin: float = 5.0  # the previous frame decides identity by this margin, pixels
    noise: float = 6.0  # camera noise, grey levels


@dataclass(frozen=True)
class TrackPersona(Persona):
    notice_rate: float = 0.985
    order: str = "animal"  # "animal": each animal through all frames; "frame": each frame, all animals
    grouping: str = "animal"  # within a frame (order "frame"): "animal" (A, FRONT, BACK) or "marker"
    # Coins the default does not flip (rate 1 or 0): it always plays through the clip before
    # starting, peeks at the previous frame whenever two animals are close (closeness shows), and
    # presses DONE as soon as ``ALL 2NT/2NT`` shows, without stepping back through the frames.
    survey_rate: float = 1.0  # plays through the clip before starting
    inspect_rate: float = 1.0  # peeks at the previous frame when two animals are close
    verify_rate: float = 0.0  # steps back through the frames at the end
    swap_rate: float = 0.12  # follows the other animal when two are close
    flip_rate: float = 0.015  # puts FRONT on the tail base and BACK on the snout
    forget_rate: float = 0.012  # places with a stale selection (skips the last select)
    late_rate: float = 0.0  # a swap or flip is noticed only on the next frame (the default: never)
    close_dist: float = 14.0  # body-to-body distance under which animals count as close

    # notice_rate, the base field, is the one rate that gets a slip noticed.
    MISTAKE_FIELDS: ClassVar[tuple[str, ...]] = Persona.MISTAKE_FIELDS + ("swap_rate", "flip_rate",
                                                                          "forget_rate")


class AnimalBehavioralTracking(Task):
    """Mark the front and back of every animal in every frame, keeping each animal's identity.

    ## Description
    An open-field arena seen from above holds 2-3 similar dark animals that move and interact over
    5-8 frames. In the first frame each animal carries a paint tag in its identity colour (A1 red,
    A2 green, A3 blue); in later frames they look alike, so identity must be carried by following
    the motion. For every frame and every animal the annotator marks the FRONT (snout) and the BACK
    (tail base) with that animal's identity. The hierarchy is animal -> marker -> place.

    ## Action Space
    A left click at a screen pixel. Buttons: ``A1``, ``A2``, ``A3`` (select the animal; a button
    beyond the scene's animal count does nothing), ``FRONT``, ``BACK`` (select the marker type),
    ``PREV``, ``NEXT`` (frames), ``UNDO``, ``DONE``. A canvas click places the selected marker of
    the selected animal in the current frame, replacing it if present.

    ## Observation Space
    The rendered screen: the current frame, this frame's markers in their identity colours (FRONT a
    ``+``, BACK an ``x``) and the previous frame's markers drawn faintly in the same colours, the
    status lines ``FRAME <t>/<T>  <animal> <marker>`` and
    ``<N> ANIMALS  HERE <m>/<2N>  ALL <k>/<2NT>``, and the selected animal and marker buttons
    highlighted.

    ## Rewards
    Zero until the episode ends, then the match rate: the fraction of (frame, animal, marker) slots
    whose marker lies within 3 data pixels of that animal's true point (missing ones count as wrong).

    ## Episode End
    DONE terminates; the env's step cap truncates. Success: match rate >= 0.9.

    ## Arguments
    See :class:`Params`: number of animals and frames, body length, speed, largest turn per frame,
    wall thickness, how close animals meet, how far apart bodies stay, the identity margin that
    keeps identity decidable from the previous frame, camera noise.

    ## Version History
    - v0: initial version.
    - v1: the annotator is a policy of the state (it finishes any episode: wrong markers are
      placed again, missing ones marked in the persona's order); steps name their target animal's
      place in the frame.
    - v2: the default annotator decides on what the screen shows: it always plays through the clip
      first, peeks at the previous frame at every close pair of animals, notices a swap or flip
      on its own frame (no late-notice coin) and presses DONE as soon as ``ALL 2NT/2NT`` shows
      (no verify coin); one correction rule for demonstrations and labels: UNDO while the latest
      annotation is a wrong marker drawn on this frame and UNDO puts back nothing wrong, else go
      to the wrong marker and place it again.
      The DONE button is drawn lit while the status shows ``ALL 2NT/2NT`` (``complete()``).
    """

    task_id = "animal_behavioral_tracking"
    version = 2
    instruction = ("Mark FRONT and BACK of every animal in every frame; tags in frame 1 give the "
                   "identities.")
    Params = Params
    # Frames back to the nearest wrong marker (at most all but one), its animal and marker, the
    # click.
    correction_length = Params.n_frames[1] + 2
    buttons = (Button("A1", "select"), Button("A2", "select"), Button("A3", "select"),
               Button("FRONT", "select"), Button("BACK", "select"),
               Button("PREV", "navigate"), Button("NEXT", "navigate"),
               Button("UNDO", "undo"), Button("DONE", "done"))
    personas = {
        "default": TrackPersona(),
        "framewise": TrackPersona(order="frame", grouping="animal", survey_rate=0.3,
                                  inspect_rate=0.25, verify_rate=0.3, late_rate=0.0),
        "hasty": TrackPersona(order="frame", grouping="marker", survey_rate=0.0, inspect_rate=0.0,
                              verify_rate=0.0, swap_rate=0.2, flip_rate=0.03, forget_rate=0.03,
                              notice_rate=0.9, late_rate=0.0),
    }

    # -- scene ---------------------------------------------------------------------------------
    def setup(self, rng: np.random.Generator) -> None:
        p = self.params
        self.n_animals = int(rng.integers(p.n_animals[0], p.n_animals[1] + 1))
        self.n_frames = int(rng.integers(p.n_frames[0], p.n_frames[1] + 1))
        n = self.n_animals
        self.body_len = rng.uniform(*p.body_length, n).tolist()
        for _ in range(500):
            sim = self._simulate(rng)
            if sim is not None:
                break
        else:  # pragma: no cover - the generator accepts within a few tries
            raise RuntimeError("could not generate an animal scene")
        self.centre, self.heading = np.array(sim[0]), np.array(sim[1])  # (T, N, 2), (T, N)
        h = np.stack([np.cos(self.heading), np.sin(self.heading)], -1)
        L = np.array(self.body_len)[None, :, None]
        self.front = self.centre + FRONT_AT * L * h
        self.back = self.centre + BACK_AT * L * h
        # Ground truth per annotation slot, idx = (t * N + k) * 2 + m.
        gt = np.stack([self.front, self.back], 2).reshape(-1, 2)
        self._gt = [(float(u), float(v)) for u, v in gt]
        self._tail_phase = rng.uniform(0, 2 * np.pi, (self.n_frames, n))
        self._tail_amp = rng.uniform(0.8, 2.5, (self.n_frames, n))
        self._noise_offsets = rng.integers(0, NOISE_BANK - p.size, (self.n_frames, 2))
        self._overlay_cache: dict = {}
        # GUI state
        self.t = 0
        self.animal = 0
        self.marker = 0
        self.ann: tuple = (None,) * (2 * n * self.n_frames)

    def _simulate(self, rng: np.random.Generator):
        """One try at trajectories: a pair approaches and meets, the others wander; None if rejected.

        Plain floats throughout: this runs a few times per reset, so it must stay cheap.
        """
        p, n, T = self.params, self.n_animals, self.n_frames
        lo, hi = p.wall + 14.0, p.size - 1 - p.wall - 14.0
        uni = rng.uniform
        a, b = (int(i) for i in rng.choice(n, 2, replace=False))
        start: list = [None] * n
        start[a] = (uni(lo, hi), uni(lo, hi))
        for _ in range(30):  # the meeting pair starts 24-36 px apart
            ang, d = uni(0.0, 2 * math.pi), uni(24.0, 36.0)
            c = (start[a][0] + d * math.cos(ang), start[a][1] + d * math.sin(ang))
            if lo <= c[0] <= hi and lo <= c[1] <= hi:
                start[b] = c
                break
        else:
            return None
        for k in range(n):  # every other animal keeps its distance
            if start[k] is None:
                for _ in range(30):
                    c = (uni(lo, hi), uni(lo, hi))
                    if all(math.hypot(c[0] - q[0], c[1] - q[1]) >= 28.0 for q in start if q):
                        start[k] = c
                        break
                else:
                    return None
        pos = [start]
        head = [uni(-math.pi, math.pi, n).tolist()]
        goal = [tuple(g) for g in uni(lo, hi, (n, 2)).tolist()]
        speed = uni(*p.speed, (T, n)).tolist()
        jitter = rng.normal(0.0, 0.2, (T, n)).tolist()
        met = False
        for t in range(1, T):
            prev, hprev = pos[-1], head[-1]
            moves = []  # (heading change, step) per animal
            for k in range(n):
                cx, cy = prev[k]
                if k in (a, b) and not met:
                    gx, gy = prev[b if k == a else a]
                else:
                    gx, gy = goal[k]
                    if math.hypot(gx - cx, gy - cy) < 8.0:
                        gx, gy = goal[k] = (uni(lo, hi), uni(lo, hi))
                want = math.atan2(gy - cy, gx - cx)
                turn = (want - hprev[k] + math.pi) % (2 * math.pi) - math.pi + jitter[t][k]
                moves.append((max(-p.max_turn, min(p.max_turn, turn)), speed[t][k]))
            # The approaching pair slows down as it closes in, to meet without colliding.
            for f in (1.0, 0.5, 0.25, 0.0):
                cur, hd = [], []
                for k in range(n):
                    turn, step = moves[k]
                    if k in (a, b) and not met:
                        turn, step = turn * f, step * f
                    h1 = hprev[k] + turn
                    cur.append((prev[k][0] + step * math.cos(h1), prev[k][1] + step * math.sin(h1)))
                    hd.append(h1)
                if met or _seg_dist(*self._axis(cur[a], hd[a], a),
                                    *self._axis(cur[b], hd[b], b)) >= p.min_gap + 1.0:
                    break
            pos.append(cur)
            head.append(hd)
            if not met and _seg_dist(*self._axis(cur[a], hd[a], a),
                                     *self._axis(cur[b], hd[b], b)) < p.encounter + 2.0:
                met = True  # after meeting they part: new goals away from each other
                for k, o in ((a, b), (b, a)):
                    gx = 2 * cur[k][0] - cur[o][0]
                    gy = 2 * cur[k][1] - cur[o][1]
                    goal[k] = (min(max(gx, lo), hi), min(max(gy, lo), hi))
        return (pos, head) if self._acceptable(pos, head) else None

    def _axis(self, c, theta, k):
        """(front, back) points of animal k at centre c and heading theta."""
        L = self.body_len[k]
        hx, hy = math.cos(theta) * L, math.sin(theta) * L
        return ((c[0] + FRONT_AT * hx, c[1] + FRONT_AT * hy), (c[0] + BACK_AT * hx, c[1] + BACK_AT * hy))

    def _acceptable(self, pos, head) -> bool:
        p, n, T = self.params, self.n_animals, self.n_frames
        edge_lo, edge_hi = p.wall + 2.0, p.size - 1 - p.wall - 2.0
        axes = [[self._axis(pos[t][k], head[t][k], k) for k in range(n)] for t in range(T)]
        met = False
        hyp = math.hypot
        for t in range(T):
            for k in range(n):
                for q in axes[t][k]:
                    if not (edge_lo <= q[0] <= edge_hi and edge_lo <= q[1] <= edge_hi):
                        return False
            for i in range(n):
                for j in range(i + 1, n):
                    d = _seg_dist(*axes[t][i], *axes[t][j])
                    if d < p.min_gap:
                        return False
                    if t >= 1 and d < p.encounter:
                        met = True
            if t == 0:
                continue
            # Identity and orientation must be decidable from the previous frame's points alone:
            # each animal's own previous points are nearer, by a margin, than any other animal's,
            # and nearer than its own points swapped front for back.
            for i in range(n):
                (fx, fy), (bx, by) = axes[t][i]
                (pfx, pfy), (pbx, pby) = axes[t - 1][i]
                own = 0.5 * (hyp(fx - pfx, fy - pfy) + hyp(bx - pbx, by - pby))
                if 0.5 * (hyp(fx - pbx, fy - pby) + hyp(bx - pfx, by - pfy)) < own + p.id_margin:
                    return False
                for j in range(n):
                    if j != i:
                        (pfx, pfy), (pbx, pby) = axes[t - 1][j]
                        if 0.5 * (hyp(fx - pfx, fy - pfy) + hyp(bx - pbx, by - pby)) < own + p.id_margin:
                            return False
        return met

    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.params.size, self.params.size)

    def slot(self, t: int, k: int, m: int) -> int:
        return (t * self.n_animals + k) * 2 + m

    def gt_point(self, t: int, k: int, m: int) -> tuple[float, float]:
        return self._gt[self.slot(t, k, m)]

    def body_distance(self, t: int, i: int, j: int) -> float:
        """Distance between the body axes of animals i and j in frame t, pixels."""
        return _seg_dist(self.front[t, i], self.back[t, i], self.front[t, j], self.back[t, j])

    def nearest_other(self, t: int, k: int) -> tuple[int, float]:
        others = [j for j in range(self.n_animals) if j != k]
        j = min(others, key=lambda j: self.body_distance(t, k, j))
        return j, self.body_distance(t, k, j)

    # -- GUI state machine ----------------------------------------------------------------------
    def press_button(self, label: str) -> Effect:
        if label == "NEXT":
            self.t = min(self.t + 1, self.n_frames - 1)
        elif label == "PREV":
            self.t = max(self.t - 1, 0)
        elif label in ANIMAL_LABELS:
            k = ANIMAL_LABELS.index(label)
            if k < self.n_animals:
                self.animal = k
        elif label in MARKERS:
            self.marker = MARKERS.index(label)
        return NO_EFFECT

    def click_canvas(self, u: float, v: float) -> Effect:
        i = self.slot(self.t, self.animal, self.marker)
        self.checkpoint()
        ann = list(self.ann)
        ann[i] = (float(u), float(v))
        self.ann = tuple(ann)
        return Effect(annotated=True, wrong=not self._ok(i, ann[i]))

    # -- rendering ------------------------------------------------------------------------------
    def view_key(self):
        return self.t

    def canvas_key(self):
        return (self.t, self.ann)  # not the selected animal or marker: they show on their tabs

    def render_view(self, key: int) -> np.ndarray:
        return self._render_frame(key)

    def _render_frame(self, t: int) -> np.ndarray:
        # Drawn channel by channel, (3, s, s): a per-pixel weight or a colour then broadcasts over
        # the leading axis, which numpy does several times faster than over a last axis 3 long.
        # Every value is computed as on the (s, s, 3) image, by the same operations.
        p, s = self.params, self.params.size
        img = _planar_floor(s, p.wall).copy()
        for k in range(self.n_animals):
            self._draw_animal(img, t, k)
        oy, ox = self._noise_offsets[t]
        img += p.noise * noise_bank()[oy:oy + s, ox:ox + s]
        return interleave(np.clip(img, 0, 255, out=img).astype(np.uint8))

    def _draw_animal(self, img: np.ndarray, t: int, k: int) -> None:
        s = self.params.size
        L = float(self.body_len[k])
        cx, cy = self.centre[t, k]
        th = float(self.heading[t, k])
        ct, st = math.cos(th), math.sin(th)
        self._draw_tail(img, t, k, L, ct, st)
        r = int(L * 0.62) + 3  # body, head, ears and shadow lie within this radius
        x0, x1 = max(int(cx) - r, 1), min(int(cx) + r + 2, s)
        y0, y1 = max(int(cy) - r, 1), min(int(cy) + r + 2, s)
        dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
        dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
        ax = (dx * (ct / L) + dy * (st / L))  # along the body, in body lengths (+ towards the snout)
        ay = (dy * (ct / L) - dx * (st / L))
        ay2 = ay * ay
        # Body and head: soft-edged ellipses (edge width about one pixel).
        qb = np.sqrt((ax - BODY_C) ** 2 * (1.0 / BODY_A ** 2) + ay2 * (1.0 / BODY_B ** 2))
        qh = np.sqrt((ax - HEAD_C) ** 2 * (1.0 / HEAD_A ** 2) + ay2 * (1.0 / HEAD_B ** 2))
        body = np.maximum((1.0 - qb) * (BODY_B * L), (1.0 - qh) * (HEAD_B * L))
        body += 0.5
        np.clip(body, 0.0, 1.0, out=body)
        # A soft shadow one pixel down-right (light from the upper left), then the fur on top.
        img[:, y0 + 1:y1 + 1, x0 + 1:x1 + 1] *= 1.0 - 0.25 * body[: s - y0 - 1, : s - x0 - 1]
        patch = img[:, y0:y1, x0:x1]
        spine = np.clip(1.0 - np.sqrt(ay2) * (1.0 / BODY_B), 0.0, 1.0)
        fur = FUR[:, None, None] + 18.0 * spine * spine
        patch += body * (fur - patch)
        aye = np.sqrt(ay2) - EAR_AY
        ear = EAR_R * L + 0.5 - L * np.sqrt((ax - EAR_AX) ** 2 + aye * aye)
        np.clip(ear, 0.0, 1.0, out=ear)
        patch += ear * (EAR[:, None, None] - patch)
        if t == 0:  # the paint tag on the back, in the identity colour
            tag = np.clip(2.2 + 0.5 - L * np.sqrt((ax + 0.08) ** 2 + ay2), 0.0, 1.0)
            patch += tag * (np.asarray(ID_COLORS[k], np.float32)[:, None, None] - patch)

    def _draw_tail(self, img, t, k, L, ct, st) -> None:
        bx, by = self.back[t, k]
        amp, ph = self._tail_amp[t, k], self._tail_phase[t, k]
        along = _TAIL_S * (-TAIL_LEN * L)
        side = np.sin(_TAIL_S * (1.3 * np.pi) + ph) * _TAIL_S * amp
        xs = np.rint(bx + along * ct - side * st).astype(np.intp)
        ys = np.rint(by + along * st + side * ct).astype(np.intp)
        s = img.shape[1]
        np.clip(xs, 0, s - 1, out=xs)  # (the arena wall keeps tails inside anyway)
        np.clip(ys, 0, s - 1, out=ys)
        img[:, ys, xs] = 0.3 * img[:, ys, xs] + 0.7 * TAIL[:, None]

    def draw_overlays(self, canvas: np.ndarray, mapper) -> None:
        # Two layers, each cached by the markers it shows: the previous frame's markers, faint
        # (blended with this frame's base image, which is what lies under them), then this frame's
        # markers on top. A cached layer is written back with one fancy assignment.
        # While the markers stand, both layers of a frame go on in one assignment (the later
        # layer last, so that it wins where they overlap, as drawn one after the other).
        hit = self.memo(("overlay", self.t, canvas.shape), lambda: self._both_layers(canvas, mapper))
        if hit:
            canvas[hit[0], hit[1]] = hit[2]

    def _both_layers(self, canvas: np.ndarray, mapper) -> tuple:
        n, t = self.n_animals, self.t
        layers = []
        if t > 0:
            layers.append(self._layer(canvas, mapper, ("prev", t, self.ann[2 * n * (t - 1):2 * n * t])))
        layers.append(self._layer(canvas, mapper, ("this", self.ann[2 * n * t:2 * n * (t + 1)])))
        layers = [q for q in layers if q]
        if len(layers) < 2:
            return layers[0] if layers else ()
        return tuple(np.concatenate(a) for a in zip(*layers))

    def _layer(self, canvas: np.ndarray, mapper, key: tuple) -> tuple:
        """(ys, xs, colours) of one layer, or (); the faint layer's colours are blended with the
        canvas, which holds the frame's base image when it is first computed."""
        key = key + canvas.shape[:2]
        hit = self._overlay_cache.get(key)
        if hit is None:
            faint = key[1] if key[0] == "prev" else -1
            parts = [self._marker_pixels(canvas, mapper, faint, i, pt)
                     for i, pt in enumerate(key[-3]) if pt is not None]
            hit = tuple(np.concatenate(a) for a in zip(*parts)) if parts else ()
            self._overlay_cache[key] = hit
        return hit

    def _marker_pixels(self, canvas: np.ndarray, mapper, faint: int, i: int, pt):
        """(ys, xs, colours) of marker slot i at pt; faint: blended over frame ``faint``'s image."""
        key = (faint, i, pt, canvas.shape[:2])
        hit = self._overlay_cache.get(key)
        if hit is not None:
            return hit
        r = max(2, round(2 * mapper.pixel_size))
        h, w = canvas.shape[:2]
        x, y = mapper.to_canvas_px(*pt)
        oy, ox = mark_offsets(MARKER_SHAPES[i & 1], r)
        ys, xs = oy + y, ox + x
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        ys, xs = ys[keep], xs[keep]
        col = np.asarray(ID_COLORS[i >> 1], np.float32)
        if faint >= 0:  # the canvas holds frame `faint`'s base image under the overlays
            vals = (canvas[ys, xs] * (1.0 - PREV_ALPHA) + col * PREV_ALPHA + 0.5).astype(np.uint8)
        else:
            vals = np.empty((len(ys), 3), np.uint8)
            vals[:] = ID_COLORS[i >> 1]
        hit = self._overlay_cache[key] = (ys, xs, vals)
        return hit

    def status(self) -> tuple[str, ...]:
        n, t = self.n_animals, self.t
        here = self.memo(("here", t),
                         lambda: sum(a is not None for a in self.ann[2 * n * t:2 * n * (t + 1)]))
        total = self.memo("total", lambda: sum(a is not None for a in self.ann))
        return (f"FRAME {t + 1}/{self.n_frames}  {ANIMAL_LABELS[self.animal]} {MARKERS[self.marker]}",
                f"{n} ANIMALS  HERE {here}/{2 * n}  ALL {total}/{len(self.ann)}")

    def selected(self) -> tuple[str, ...]:
        return (ANIMAL_LABELS[self.animal], MARKERS[self.marker])

    def complete(self) -> bool:  # ALL 2NT/2NT
        return self.memo("total", lambda: sum(a is not None for a in self.ann)) == len(self.ann)

    def undo_change(self) -> tuple[int, tuple | None] | None:
        """What UNDO would change: (slot, the point it puts back, None for none), or None where it
        would change nothing. Every annotating click changes one slot."""
        if not self._undo_stack:
            return None
        before = self._undo_stack[-1]
        i = next((i for i, (a, b) in enumerate(zip(before, self.ann)) if a != b), None)
        return None if i is None else (i, before[i])

    # -- latents and score ----------------------------------------------------------------------
    def position(self) -> float:
        return self.t / max(1, self.n_frames - 1)

    def target_point(self, k: int) -> tuple[float, float] | None:
        """Animal k's body centre in this frame."""
        if not 0 <= k < self.n_animals:
            return None
        u, v = self.centre[self.t, k]
        return float(u), float(v)

    def slot_ok(self, t: int, k: int, m: int) -> bool | None:
        """None if marker m of animal k in frame t is missing, else whether it matches."""
        i = self.slot(t, k, m)
        return None if self.ann[i] is None else self._ok(i, self.ann[i])

    def _ok(self, i: int, pt) -> bool:
        g = self._gt[i]
        return math.hypot(pt[0] - g[0], pt[1] - g[1]) <= MATCH_PX

    def _counts(self) -> tuple[int, int]:
        return self.memo("counts", self._compute_counts)

    def _compute_counts(self) -> tuple[int, int]:
        """(matched, wrong) over all slots."""
        matched = wrong = 0
        for i, pt in enumerate(self.ann):
            if pt is not None:
                if self._ok(i, pt):
                    matched += 1
                else:
                    wrong += 1
        return matched, wrong

    def n_wrong(self) -> int:
        return self._counts()[1]

    def score(self) -> tuple[float, bool]:
        rate = self._counts()[0] / len(self.ann)
        return rate, rate >= SUCCESS_SCORE


def _seg_dist(p0, p1, q0, q1) -> float:
    """Shortest distance between segments p0-p1 and q0-q1 in 2D (0 where they cross)."""
    def pt_seg(pt, a, b):
        ab = (b[0] - a[0], b[1] - a[1])
        den = ab[0] * ab[0] + ab[1] * ab[1]
        s = (pt[0] - a[0]) * ab[0] + (pt[1] - a[1]) * ab[1]
        s = 0.0 if den == 0 else max(0.0, min(1.0, s / den))
        return math.hypot(pt[0] - a[0] - s * ab[0], pt[1] - a[1] - s * ab[1])

    if _segments_cross(p0, p1, q0, q1):
        return 0.0
    return min(pt_seg(p0, q0, q1), pt_seg(p1, q0, q1), pt_seg(q0, p0, p1), pt_seg(q1, p0, p1))


def _segments_cross(p0, p1, q0, q1) -> bool:
    def orient(a, b, c):
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = orient(q0, q1, p0), orient(q0, q1, p1)
    d3, d4 = orient(p0, p1, q0), orient(p0, p1, q1)
    return (d1 > 0) != (d2 > 0) and (d3 > 0) != (d4 > 0)


@dataclass(frozen=True)
class _Slip:
    """A wrong placement the annotator has just clicked, until it sees whether the click landed."""

    kind: str  # "swap", "flip" (a unit gone wrong), "forget" (stale selection), "follow"
    spot: tuple[int, int, int]  # the (frame, identity, marker) the click places
    aim: tuple[int, int, int]  # the (frame, identity, marker) the annotator meant to place
    marked: int  # the animal whose point it clicks
    before: tuple  # the annotations before the click
    last: bool = True  # the last slip of its unit: the unit is judged once it lands


@dataclass
class _Tour:
    """Frames to visit in turn without annotating: (frame, phase) waypoints."""

    waypoints: list[tuple[int, str]]
    target: int = -1


class AnimalTrackingAnnotator(Annotator, task=AnimalBehavioralTracking):
    """Marks the missing slots in its persona's order, taking each identity for the animal nearest
    its markers of the frame before (the frame-1 tags at the start). Wrong markers it knows of are
    taken back first: UNDO where the latest annotation is one of them, drawn on this frame, and
    UNDO puts back nothing wrong; else it goes to the nearest and places it again. It knows of all
    but the ones it slipped on and has not noticed (demonstrations and labels share the rule)."""

    persona: TrackPersona
    task: AnimalBehavioralTracking

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._started = False
        self._tour: _Tour | None = None
        self._inspected: set[tuple[int, int]] = set()  # instances it has decided to peek before
        self._verified = False  # it has decided whether to verify before DONE
        self._judged: set[tuple] = set()  # units whose slips have all been made
        self._slip: _Slip | None = None
        # The unit being spoilt and its slips so far: (annotations after, before, slip).
        self._chain: tuple[tuple, list[tuple[tuple, tuple, _Slip]]] = ((), [])
        self._left: dict[int, tuple] = {}  # slot -> a wrong point not noticed (yet)
        # identity -> (frame, animal, {slot: point}): after a swap it did not notice, it follows
        # that animal in later frames, as long as those markers stay.
        self._follow: dict[int, tuple[int, int, dict[int, tuple]]] = {}
        self._redo: set[int] = set()  # slots to place again after their slip was undone
        self._late = False  # a noticed slip it goes to see on the next frame before its UNDO

    def next_intent(self) -> Intent:
        t, p = self.task, self.persona
        if not self._started:
            self._started = True
            fresh = t.t == 0 and all(a is None for a in t.ann)
            if fresh and self.decide(("survey",), p.survey_rate):
                self._tour = _Tour([(t.n_frames - 1, "survey"), (0, "survey")])
        self._see_slip()
        if self._late and self._tour is not None:  # a slip seen only from the next frame first
            step = self._tour_step()
            if step is not None:
                return step
        self._late = False
        undo = self._undo_fix()
        if undo is not None:
            return undo
        intent = self._act()
        if intent is None and not self._verified:
            self._verified = True
            if self.decide(("verify",), p.verify_rate):
                far = 0 if t.t >= t.n_frames // 2 else t.n_frames - 1
                self._tour = _Tour([(far, "verify")])
                intent = self._tour_step()
        return intent if intent is not None else self.press("DONE", "finish")

    def _act(self) -> Intent | None:
        """Fix a known wrong marker, else go on with the tour, else work on the first missing
        slot in the persona's order; None when nothing is left to do."""
        t = self.task
        wrong = self._known_wrong()
        if wrong is not None:
            return self._fix(*wrong)
        if self._tour is not None:
            step = self._tour_step()
            if step is not None:
                return step
        slot = next((s for s in self._sequence() if t.ann[t.slot(*s)] is None), None)
        return None if slot is None else self._label(*slot)

    def _sequence(self) -> list[tuple[int, int, int]]:
        """Every (frame, identity, marker) in the persona's working order."""
        t, p = self.task, self.persona
        T, N = range(t.n_frames), range(t.n_animals)
        if p.order == "animal":
            return [(f, k, m) for k in N for f in T for m in (0, 1)]
        if p.grouping == "animal":
            return [(f, k, m) for f in T for k in N for m in (0, 1)]
        return [(f, k, m) for f in T for m in (0, 1) for k in N]

    def _unit(self, f: int, k: int, m: int) -> tuple[int, ...]:
        """What one swap or flip spoils: the instance (both markers), or for the marker-by-marker
        persona one marker. (A stale selection spoils one slot: ("forget", f, k, m).)"""
        by_marker = self.persona.order == "frame" and self.persona.grouping == "marker"
        return (f, k, m) if by_marker else (f, k)

    def _go(self, f: int, phase: str, target: int, correction: bool = False) -> Intent:
        return self.press("NEXT" if f > self.task.t else "PREV", phase, target, correction)

    def _select(self, k: int, m: int) -> list[str]:
        """The selects slot (identity k, marker m) still needs, animal first."""
        t = self.task
        need = [ANIMAL_LABELS[k]] if t.animal != k else []
        if t.marker != m:
            need.append(MARKERS[m])
        return need

    # -- fixing --------------------------------------------------------------------------------
    def _undo_fix(self) -> Intent | None:
        """UNDO where the latest annotation is a wrong marker (not one it has left) drawn on this
        frame, and UNDO puts back nothing wrong (a missing or right marker). Demonstrations and
        labels share it; elsewhere a wrong marker is gone to and placed again (:meth:`_fix`)."""
        t = self.task
        ch = t.undo_change()
        if ch is None:
            return None
        i, before = ch
        pt = t.ann[i]
        wrong = pt is not None and not t._ok(i, pt) and i not in self._left
        fixes = before is None or t._ok(i, before)
        f, k = divmod(i // 2, t.n_animals)
        if wrong and fixes and t.t == f:
            return self.press("UNDO", "correct", k, True)
        return None

    def _known_wrong(self) -> tuple[int, int, int] | None:
        """The wrong marker it knows of nearest to this frame (the lower frame on a tie)."""
        t = self.task
        for f in sorted(range(t.n_frames), key=lambda f: (abs(f - t.t), f)):
            for k in range(t.n_animals):
                for m in (0, 1):
                    if t.slot_ok(f, k, m) is False and t.slot(f, k, m) not in self._left:
                        return f, k, m
        return None

    def _fix(self, f: int, k: int, m: int) -> Intent:
        """Place slot (f, k, m) again: to its frame, its animal and marker, its click."""
        t = self.task
        if t.t != f:
            return self._go(f, "correct", k, True)
        need = self._select(k, m)
        if need:
            return self.press(need[0], "correct", k, True)
        return self.place(*t.gt_point(f, k, m), "correct", k, True)

    # -- slips ---------------------------------------------------------------------------------
    def _see_slip(self) -> None:
        """After a slip click: once its unit's slips are all down, notice them (then UNDO) or
        leave them; after a swap left, follow the animal it marked."""
        s, self._slip = self._slip, None
        t, p = self.task, self.persona
        for i, pt in list(self._left.items()):
            if t.ann[i] != pt:  # someone moved or removed it: no longer left
                del self._left[i]
        if s is None or t.ann is s.before or t.slot_ok(*s.spot) is not False:
            return  # the click did not land as a slip
        after, spot = t.ann, t.slot(*s.spot)
        self._left[spot] = after[spot]
        if s.kind == "follow":
            return
        unit = ("forget", *s.aim) if s.kind == "forget" else self._unit(*s.aim)
        chain = self._chain[1] if self._chain[0] == unit else []
        chain.append((after, s.before, s))
        self._chain = ((), []) if s.last else (unit, chain)
        if not s.last:
            return
        f, k, m = s.aim
        if self.decide(("notice", *unit), p.notice_rate):
            # Noticed: the state rule takes the unit's slips back with UNDO, latest first.
            for _, _, c in chain:
                self._left.pop(t.slot(*c.spot), None)
                self._redo.add(t.slot(*c.aim))
            late = s.kind != "forget" and p.order == "animal" and f < t.n_frames - 1
            if late and self.decide(("late", *unit), p.late_rate):
                # Sees it on the next frame: its faint markers sit on the wrong animal.
                self._tour = _Tour([(f + 1, "navigate"), (f, "correct")], k)
                self._late = True
        elif s.kind == "swap" and (len(unit) == 2 or m == 1):
            # Carries on with the animal it marked, once its BACK is on that one too.
            kept = {t.slot(*c.spot): a[t.slot(*c.spot)] for a, _, c in chain}
            self._follow[k] = (f, s.marked, kept)

    def _animal(self, f: int, k: int) -> int:
        """The animal it takes identity k for in frame f: its own, unless it has been following
        another since a swap it did not notice."""
        if k in self._follow:
            f0, j, kept = self._follow[k]
            if any(self.task.ann[i] != pt for i, pt in kept.items()):
                del self._follow[k]  # those markers changed: it sees the identity again
            elif f > f0:
                return j
        return k

    def _nearest(self, f: int, g: int) -> tuple[int, bool]:
        """The animal nearest to animal g in frame f, and whether the two are close."""
        j, dist = self.task.nearest_other(f, g)
        return j, f > 0 and dist < self.persona.close_dist

    def _error(self, unit: tuple, close: bool) -> str | None:
        """What goes wrong with this unit: "swap" (marks the nearby animal), "flip" (front for
        back), or None."""
        if unit in self._judged:
            return None
        p = self.persona
        if close and self.decide(("swap", *unit), p.swap_rate):
            return "swap"
        return "flip" if self.decide(("flip", *unit), p.flip_rate) else None

    # -- labelling -----------------------------------------------------------------------------
    def _label(self, f: int, k: int, m: int) -> Intent:
        """The next click towards slot (f, k, m): its frame, a peek, its selects, its click."""
        t, p = self.task, self.persona
        if t.t != f:
            return self._go(f, "navigate", k)
        g = self._animal(f, k)
        j, close = self._nearest(f, g)
        untouched = t.ann[t.slot(f, k, 0)] is None and t.ann[t.slot(f, k, 1)] is None
        if close and untouched and (f, k) not in self._inspected:
            self._inspected.add((f, k))
            if self.decide(("inspect", f, k), p.inspect_rate):
                # Peeks at the previous frame: which of the two close animals came from where.
                self._tour = _Tour([(f - 1, "inspect"), (f, "inspect")], k)
                return self._tour_step()
        slot = t.slot(f, k, m)
        redo = slot in self._redo
        unit = self._unit(f, k, m)
        error = None if redo else self._error(unit, close)
        need = self._select(k, m)
        if need:
            forget = ("forget", f, k, m)
            if len(need) == 1 and error is None and not redo and forget not in self._judged \
                    and self.decide(forget, p.forget_rate):
                # Skips the last select: the stale selection's marker moves here.
                self._judged.add(forget)
                self._slip = _Slip("forget", (f, t.animal, t.marker), (f, k, m), g, t.ann)
                return self.place(*t.gt_point(f, g, m), "place", k)
            return self.press(need[0], "correct" if redo else "select", k, redo)
        marked = j if error == "swap" else g
        point = t.gt_point(f, marked, 1 - m if error == "flip" else m)
        if error is not None:
            last = len(unit) == 3 or t.ann[t.slot(f, k, 1 - m)] is not None
            if last:
                self._judged.add(unit)
            self._slip = _Slip(error, (f, k, m), (f, k, m), marked, t.ann, last)
        elif g != k:
            self._slip = _Slip("follow", (f, k, m), (f, k, m), g, t.ann)
        self._redo.discard(slot)
        return self.place(*point, "correct" if redo else "place", k, redo)

    def _tour_step(self) -> Intent | None:
        """The next move of the tour; None (and the tour ends) once its last frame is reached."""
        tour, t = self._tour, self.task
        while tour.waypoints and t.t == tour.waypoints[0][0]:
            tour.waypoints.pop(0)
        if not tour.waypoints:
            self._tour = None
            return None
        f, phase = tour.waypoints[0]
        return self._go(f, phase, tour.target, phase == "correct")
