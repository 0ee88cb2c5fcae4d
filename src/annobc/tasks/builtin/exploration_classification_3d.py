"""3d_exploration_classification: explore the volume and classify the object.

Analogue: phenotype classification that needs the third dimension (a widefield fluorescence stack
of one cell-like object that has to be scrolled through before it can be classified).

The module name cannot start with a digit; the task id is ``3d_exploration_classification``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from annobc.tasks.annotator import Annotator, Intent
from annobc.tasks.base import Button, Effect, NO_EFFECT, Persona, Task

CLASSES = ("SPHERE", "ELLIPSOID", "TORUS", "2 SPHERES")
SPHERE, ELLIPSOID, TORUS, PAIR = range(4)

NOISE_BANK = 512  # side of the fixed noise and texture fields that slices are cropped from
RADIAL_STEP = 0.5  # data pixels between samples of a slice's radial intensity profile
RADIAL_MAX = 40.0  # profiles cover 0..RADIAL_MAX data pixels from the object's axis
# Rows per matrix product: OpenBLAS runs a product this small (rows x 81 x 81) on one thread, so
# the blur never spins up BLAS threads that fight the other processes for the cores.
BLAS_ROWS = 32
DEFOCUS_STEPS = 8  # out-of-focus light reaches a slice from planes up to this many px away in z
PIN_COLOR = (255, 215, 60)
VISIBLE = 0.3  # a slice shows the object where its peak is >= this x the brightest slice's
# Dark slices after an object before the annotator takes it as gone: the dark gap between two
# stacked spheres is 1-4 slices (4 at most over 3,000 scenes), so on the 5th it is one sphere.
GONE = 5


@lru_cache(maxsize=1)
def _unit_fields() -> tuple[np.ndarray, np.ndarray]:
    """Fixed fields: camera-like noise (unit variance, 2x2 correlated) and a smooth texture."""
    rng = np.random.default_rng(20261203)
    n = rng.normal(0.0, 1.0, (NOISE_BANK + 1, NOISE_BANK + 1))
    noise = 0.5 * (n[:-1, :-1] + n[1:, 1:] + n[:-1, 1:] + n[1:, :-1])
    t = rng.normal(0.0, 1.0, (NOISE_BANK + 4, NOISE_BANK + 4))
    k = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0  # binomial smoothing, ~1 px correlation
    t = sum(k[i] * t[:, i:i + NOISE_BANK] for i in range(5))
    t = sum(k[i] * t[i:i + NOISE_BANK, :] for i in range(5))
    t /= t.std()
    return noise.astype(np.float32), t.astype(np.float32)


@lru_cache(maxsize=1)
def _lut() -> np.ndarray:
    """Grey level -> RGB: a green fluorescence look-up table (GFP-like), slightly gamma-lifted."""
    g = np.arange(256, dtype=np.float64) / 255.0
    v = g ** 0.85
    rgb = np.stack([0.30 * v + 0.25 * v ** 3, v, 0.38 * v + 0.2 * v ** 3], 1)
    lut = np.clip(np.round(rgb * 255.0), 0, 255).astype(np.uint8)
    lut.flags.writeable = False
    return lut


@lru_cache(maxsize=8)
def _background_bank(background: float, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """The noisy empty background as grey floats and as RGB; slices are crops of it."""
    grey = background + noise * _unit_fields()[0]
    rgb = _lut()[np.clip(grey, 0, 255).astype(np.uint8)]
    grey.flags.writeable = False
    rgb.flags.writeable = False
    return grey, rgb


def _i0e(x: np.ndarray) -> np.ndarray:
    """exp(-x) * I0(x) for x >= 0 (numpy has I0 but not its scaled form)."""
    out = np.empty_like(x)
    small = x < 30.0
    xs = x[small]
    out[small] = np.i0(xs) * np.exp(-xs)
    xl = x[~small]
    series = 1 + 1 / (8 * xl) + 9 / (128 * xl ** 2) + 225 / (3072 * xl ** 3)
    out[~small] = series / np.sqrt(2 * np.pi * xl)
    return out


@lru_cache(maxsize=8)
def _radial_blurs(focus_sigma: float, defocus: float) -> tuple[np.ndarray, ...]:
    """For each defocus |dz| = 0..DEFOCUS_STEPS px, the 2D Gaussian blur of a radially symmetric
    profile as a matrix on the radial grid (out = B @ in). The blur widens with defocus, as a
    widefield microscope's point-spread function does."""
    d = np.arange(0.0, RADIAL_MAX + RADIAL_STEP / 2, RADIAL_STEP)
    w = d * RADIAL_STEP  # ring area element (trapezoid rule; d = 0 has no area)
    w[-1] *= 0.5
    mats = []
    for dz in range(DEFOCUS_STEPS + 1):
        s2 = focus_sigma ** 2 + (defocus * dz) ** 2
        di, dj = d[:, None], d[None, :]
        b = (w[None, :] / s2) * np.exp(-((di - dj) ** 2) / (2 * s2)) * _i0e(di * dj / s2)
        b /= b[: len(d) // 2].sum(1).mean()  # a flat profile stays flat (away from the grid end)
        mats.append(np.ascontiguousarray(b.T, dtype=np.float32))  # transposed: rows @ B.T
    return tuple(mats)


@dataclass(frozen=True)
class Params:
    size: int = 112  # canvas data grid side, pixels
    n_slices: tuple[int, int] = (32, 40)
    z_step: float = 2.0  # data pixels per slice: z is sampled coarser than xy, as in microscopy
    sphere_radius: tuple[float, float] = (6.0, 11.0)
    ellipsoid_radius: tuple[float, float] = (6.0, 9.5)  # xy radius of the ellipsoid
    elongation: tuple[float, float] = (1.8, 2.4)  # ellipsoid z radius / xy radius
    torus_radius: tuple[float, float] = (7.0, 10.0)  # major radius (axis along z)
    tube_ratio: tuple[float, float] = (0.5, 0.62)  # tube radius / major radius
    pair_radius: tuple[float, float] = (5.0, 8.0)  # each of the two stacked spheres
    pair_gap: tuple[float, float] = (6.0, 10.0)  # z gap between the two spheres, data pixels
    amplitude: tuple[float, float] = (110.0, 170.0)  # object brightness over background, grey levels
    background: float = 18.0  # background grey level
    noise: float = 8.0  # standard deviation of the camera noise, grey levels
    texture: float = 0.12  # relative amplitude of the object's internal texture
    focus_sigma: float = 0.8  # in-focus lateral blur, data pixels
    defocus: float = 0.9  # lateral blur growth per data pixel of defocus
    depth_of_field: float = 4.0  # axial fall-off of out-of-focus light (Gaussian sigma, data pixels)


@dataclass(frozen=True)
class ExplorePersona(Persona):
    mistake_rate: float = 0.10  # commits to a wrong class before the object has been seen whole
    notice_rate: float = 0.97  # ... and notices it when the volume shows otherwise
    slip_rate: float = 0.03  # presses the neighbouring class button by accident
    slip_notice_rate: float = 0.99  # sees the wrong highlighted button / status and fixes it
    # When to press DONE once the class is selected: "select": at once, on the slice where the
    # class showed (the click after the select); "sweep": after sweeping on to the last slice
    # (``Z Z-1/Z-1``); "full": after the sweep, back up to the object's widest slice.
    scan: str = "select"
    # The survey before the sweep: "stack": down to the last slice, then up to the top slice,
    # pinning the object on its first slice seen from below (so the sweep down, which begins at
    # the top, runs with the crosshair already shown); "top": straight up to the top slice.
    survey: str = "stack"
    correct_by: str = "undo"  # "undo": UNDO the premature choice; "reselect": pick the right class
    repin: bool = False  # re-centres the crosshair at the object's (hidden) widest slice

    MISTAKE_FIELDS: ClassVar[tuple[str, ...]] = ("mistake_rate", "slip_rate")
    NOTICE_FIELDS: ClassVar[tuple[str, ...]] = ("notice_rate", "slip_notice_rate")


class ExplorationClassification3D(Task):
    """Scroll through a noisy stack and classify its one object by its 3D shape.

    ## Description
    A widefield-fluorescence-like z-stack (32-40 slices, z sampled every 2 data pixels) holds one
    object of four classes: ``SPHERE``, ``ELLIPSOID`` (elongated in z), ``TORUS`` (a ring around
    the z axis) and ``2 SPHERES`` (two spheres stacked in z). Any slice through a sphere, an
    ellipsoid or either of two stacked spheres is the same disc, and out-of-focus blur fills the
    torus's hole outside its middle slices: the class shows only over the z-scan (z extent against
    disc size, a hole in the middle slices, a disc that shrinks, vanishes and comes back). Size and
    position are random. The view opens at the middle slice.

    ## Action Space
    A left click at a screen pixel. Buttons: ``+Z``, ``-Z`` (navigate), ``SPHERE``, ``ELLIPSOID``,
    ``TORUS``, ``2 SPHERES`` (select the class; clicking the selected class again does nothing),
    ``UNDO`` (undoes the last class selection), ``DONE``. A canvas click pins a crosshair at that
    point (a view aid drawn on every slice, not an annotation: it is not scored nor undone).

    ## Observation Space
    The rendered screen: the current slice, the crosshair if pinned, the status lines
    ``Z <z>/<Z-1>  CLASS <class or NONE>`` and ``CLASSIFY THE OBJECT`` (with ``PIN <x>,<y>`` once
    pinned), and the selected class's button highlighted.

    ## Rewards
    Zero until the episode ends, then 1 if the selected class is the object's class, else 0.

    ## Episode End
    DONE terminates; the env's step cap truncates. Success: the selected class is right. A uniform
    random guess is right one time in four (``chance_level = 0.25``).

    ## Arguments
    See :class:`Params`: stack depth and z step, the size ranges of each class (radii, ellipsoid
    elongation, torus tube ratio, gap between stacked spheres), brightness, background, noise,
    texture, and the optics (in-focus blur, blur growth with defocus, depth of field).

    ## Version History
    - v0: initial version.
    - v1: the annotator is a policy of the state (slice, class, crosshair) and what it has seen;
      it removes a wrong class it did not choose to leave at once, from any state.
    - v2: the annotator decides on what the screen shows: it selects the class on the slice where
      the class shows (a torus's hole, the second of two spheres coming back after the gap, an
      ellipsoid's disc staying wide longer than a sphere's could, where a premature guess is also
      refuted; a sphere five dark slices past it, more than any gap between two spheres, or at
      the last slice), and (default) presses DONE on the next click, on that slice: no sweep on
      to the bottom and no climb back to the hidden widest slice before DONE, and no re-pin at
      the hidden widest slice. Its survey first
      goes down to the last slice and up to the top, pinning the object on the way up (turning at
      the stack's ends, shown as ``Z <Z-1>/<Z-1>`` and ``Z 0``); the sweep down then runs with the
      crosshair shown, which tells it from the survey down. The "quick" persona surveys straight
      up and sweeps to the last slice before DONE, "careless" also climbs back.
      The DONE button is drawn lit while a class is selected (``complete()``).
    """

    task_id = "3d_exploration_classification"
    version = 2
    instruction = "Scroll through the stack and select the class of the object's 3D shape, then DONE."
    Params = Params
    buttons = (Button("+Z", "navigate"), Button("-Z", "navigate"),
               *(Button(c, "select") for c in CLASSES),
               Button("UNDO", "undo"), Button("DONE", "done"))
    personas = {
        "default": ExplorePersona(),
        "quick": ExplorePersona(scan="sweep", survey="top", correct_by="reselect",
                                mistake_rate=0.15, notice_rate=0.95),
        "careless": ExplorePersona(mistake_rate=0.25, notice_rate=0.85, slip_rate=0.06,
                                   slip_notice_rate=0.9, scan="full", survey="top"),
    }
    chance_level = 1 / len(CLASSES)
    correction_length = 1  # one UNDO (or the right class) replaces the wrong selection

    # -- scene ---------------------------------------------------------------------------------
    def setup(self, rng: np.random.Generator) -> None:
        p = self.params
        self.n_slices = int(rng.integers(p.n_slices[0], p.n_slices[1] + 1))
        self.label = int(rng.integers(len(CLASSES)))
        self.amplitude = float(rng.uniform(*p.amplitude))
        u = lambda r: float(rng.uniform(*r))  # noqa: E731
        if self.label == SPHERE:
            r = u(p.sphere_radius)
            self.shape = {"r": r}
            outer, half_z = r, r
        elif self.label == ELLIPSOID:
            r = u(p.ellipsoid_radius)
            rz = r * u(p.elongation)
            self.shape = {"r": r, "rz": rz}
            outer, half_z = r, rz
        elif self.label == TORUS:
            rm = u(p.torus_radius)
            a = rm * u(p.tube_ratio)
            self.shape = {"rm": rm, "a": a}
            outer, half_z = rm + a, a
        else:
            r1, r2, gap = u(p.pair_radius), u(p.pair_radius), u(p.pair_gap)
            self.shape = {"r1": r1, "r2": r2, "gap": gap}
            outer, half_z = max(r1, r2), r1 + r2 + gap / 2
        margin = outer + 6.0
        self.cx, self.cy = (float(c) for c in rng.uniform(margin, p.size - 1 - margin, 2))
        zmax = (self.n_slices - 1) * p.z_step
        lo, hi = half_z + 2.5 * p.z_step, zmax - half_z - 2.5 * p.z_step
        self.cz = float(rng.uniform(lo, hi)) if hi > lo else zmax / 2
        self.outer, self.half_z = outer, half_z
        self._noise_offsets = rng.integers(0, NOISE_BANK - p.size, (self.n_slices, 2))
        self._tex_offset = rng.integers(0, NOISE_BANK - p.size, 2)
        self._profiles: np.ndarray | None = None
        # GUI state
        self.z = self.n_slices // 2
        self.pin: tuple[float, float] | None = None  # view aid, not an annotation
        self.ann: int | None = None  # the selected class

    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.params.size, self.params.size)

    def class_name(self) -> str:
        return CLASSES[self.label]

    # -- optics: radial profiles of every slice ------------------------------------------------
    def _cross_section(self, h: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Occupancy (0..1, anti-aliased edge) of the object at absolute heights h (n,) and radii d."""
        s, dz = self.shape, h[:, None] - self.cz
        edge = lambda rho: np.clip(rho - d[None, :] + 0.5, 0.0, 1.0)  # noqa: E731
        if self.label == SPHERE:
            return edge(np.sqrt(np.maximum(s["r"] ** 2 - dz ** 2, 0.0)) - 10 * (np.abs(dz) >= s["r"]))
        if self.label == ELLIPSOID:
            q = 1.0 - (dz / s["rz"]) ** 2
            return edge(s["r"] * np.sqrt(np.maximum(q, 0.0)) - 10 * (q <= 0))
        if self.label == TORUS:
            q = s["a"] ** 2 - dz ** 2
            half = np.sqrt(np.maximum(q, 0.0)) - 10 * (q <= 0)
            outer = edge(s["rm"] + half)
            inner = np.clip(d[None, :] - (s["rm"] - half) + 0.5, 0.0, 1.0)
            return np.minimum(outer, inner)
        z1 = self.cz - self.half_z + s["r1"]  # upper sphere (smaller z)
        z2 = self.cz + self.half_z - s["r2"]
        out = []
        for zc, r in ((z1, s["r1"]), (z2, s["r2"])):
            q = r ** 2 - (h[:, None] - zc) ** 2
            out.append(edge(np.sqrt(np.maximum(q, 0.0)) - 10 * (q <= 0)))
        return np.maximum(*out)

    def profiles(self) -> np.ndarray:
        """(n_slices, n_radii) intensity of every slice against distance from the object's axis,
        in units of the object's brightness: in-focus cross-sections plus defocused light from the
        planes above and below (computed once, on first need)."""
        if self._profiles is None:
            p = self.params
            d = np.arange(0.0, RADIAL_MAX + RADIAL_STEP / 2, RADIAL_STEP)
            prof = np.zeros((self.n_slices, len(d)), np.float32)
            zs = np.arange(self.n_slices) * p.z_step
            reach = self.half_z + DEFOCUS_STEPS + 1
            ks = np.nonzero(np.abs(zs - self.cz) <= reach)[0]
            if len(ks):
                mats = _radial_blurs(p.focus_sigma, p.defocus)
                offs = np.arange(-DEFOCUS_STEPS, DEFOCUS_STEPS + 1)
                weights = np.exp(-0.5 * (offs / p.depth_of_field) ** 2)
                heights = (zs[ks][:, None] + offs[None, :]).ravel()
                occ = self._cross_section(heights, d).astype(np.float32).reshape(len(ks), len(offs), -1)
                acc = np.zeros((len(ks), len(d)), np.float32)
                for j, off in enumerate(offs):
                    if off < 0:
                        continue
                    rows = occ[:, DEFOCUS_STEPS + off] + (occ[:, DEFOCUS_STEPS - off] if off else 0)
                    for r0 in range(0, len(ks), BLAS_ROWS):
                        acc[r0:r0 + BLAS_ROWS] += weights[j] * (rows[r0:r0 + BLAS_ROWS] @ mats[off])
                prof[ks] = acc / weights.sum()
            self._profiles = prof
        return self._profiles

    # -- GUI state machine ----------------------------------------------------------------------
    def press_button(self, label: str) -> Effect:
        if label == "+Z":
            self.z = min(self.z + 1, self.n_slices - 1)
        elif label == "-Z":
            self.z = max(self.z - 1, 0)
        elif label in CLASSES:
            k = CLASSES.index(label)
            if k == self.ann:
                return NO_EFFECT  # a radio button: the selected class stays selected
            self.checkpoint()
            self.ann = k
            return Effect(annotated=True, wrong=k != self.label)
        return NO_EFFECT

    def click_canvas(self, u: float, v: float) -> Effect:
        self.pin = (float(u), float(v))  # a view aid: no annotation, nothing to undo
        return NO_EFFECT

    # -- rendering ------------------------------------------------------------------------------
    def view_key(self):
        return self.z

    def canvas_key(self):
        return (self.z, self.pin)  # the class chosen shows on its button, not on the canvas

    def render_view(self, key: int) -> np.ndarray:
        return self._render_slice(key)

    def _render_slice(self, k: int) -> np.ndarray:
        p = self.params
        s = p.size
        grey_bank, rgb_bank = _background_bank(p.background, p.noise)
        oy, ox = self._noise_offsets[k]
        prof = self.profiles()[k]
        if not prof.any():
            return rgb_bank[oy:oy + s, ox:ox + s]  # an empty slice: a read-only crop, no copy
        img = rgb_bank[oy:oy + s, ox:ox + s].copy()
        x0, x1, y0, y1, idx, shade = self._radial_index()
        obj = (self.amplitude * prof[idx]) * shade
        grey = grey_bank[oy + y0:oy + y1, ox + x0:ox + x1] + obj
        img[y0:y1, x0:x1] = np.take(_lut(), np.clip(grey, 0, 255, out=grey).astype(np.uint8), axis=0)
        return img

    def _radial_index(self) -> tuple[int, int, int, int, np.ndarray, np.ndarray]:
        """The window around the object that a slice can show it in, each pixel's index into the
        radial profiles and its texture shading: the same on every slice, so computed on the
        first."""
        got = self.__dict__.get("_radial_cache")
        if got is None:
            p, s = self.params, self.params.size
            blur = math.hypot(p.focus_sigma, p.defocus * DEFOCUS_STEPS)  # widest defocus blur
            reach = min(RADIAL_MAX - 1, self.outer + 3 * blur)
            x0, x1 = max(int(self.cx - reach), 0), min(int(self.cx + reach) + 2, s)
            y0, y1 = max(int(self.cy - reach), 0), min(int(self.cy + reach) + 2, s)
            dx = np.arange(x0, x1) - self.cx
            dy = np.arange(y0, y1) - self.cy
            idx = np.rint(np.sqrt(dy[:, None] ** 2 + dx[None, :] ** 2) / RADIAL_STEP).astype(np.intp)
            np.minimum(idx, self.profiles().shape[1] - 1, out=idx)
            ty, tx = self._tex_offset
            shade = 1.0 + p.texture * _unit_fields()[1][ty + y0:ty + y1, tx + x0:tx + x1]
            idx.flags.writeable = shade.flags.writeable = False
            got = self._radial_cache = (x0, x1, y0, y1, idx, shade)
        return got

    def draw_overlays(self, canvas: np.ndarray, mapper) -> None:
        if self.pin is None:
            return
        ys, xs = self.memo(("reticle", self.pin, mapper, canvas.shape),
                           lambda: self._reticle_pixels(mapper, *canvas.shape[:2]))
        canvas[ys, xs] = PIN_COLOR

    def _reticle_pixels(self, mapper, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = mapper.to_canvas_px(*self.pin)
        ys, xs = _reticle(max(1, round(mapper.pixel_size)))
        ys, xs = ys + y, xs + x
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        return ys[keep], xs[keep]

    def status(self) -> tuple[str, ...]:
        cls = "NONE" if self.ann is None else CLASSES[self.ann]
        line2 = "CLASSIFY THE OBJECT"
        if self.pin is not None:
            line2 += f"  PIN {round(self.pin[0])},{round(self.pin[1])}"
        return (f"Z {self.z}/{self.n_slices - 1}  CLASS {cls}", line2)

    def selected(self) -> tuple[str, ...]:
        return () if self.ann is None else (CLASSES[self.ann],)

    def complete(self) -> bool:
        return self.ann is not None  # CLASS <x>

    # -- latents and score ----------------------------------------------------------------------
    def position(self) -> float:
        return self.z / (self.n_slices - 1)

    def target_point(self, k: int) -> tuple[float, float] | None:
        """The object (k = 0) is centred on the same point of every slice."""
        return (self.cx, self.cy) if k == 0 else None

    def target_offset(self, k: int) -> int | None:
        """Slices from the object's centre slice."""
        return self.z - round(self.cz / self.params.z_step) if k == 0 else None

    def n_wrong(self) -> int:
        return int(self.ann is not None and self.ann != self.label)

    def score(self) -> tuple[float, bool]:
        ok = self.ann == self.label
        return (1.0 if ok else 0.0), ok


@lru_cache(maxsize=8)
def _reticle(scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Four ticks around a centre left open, so the crosshair never hides what is under it."""
    k = np.arange(4 * scale, 7 * scale + 1)
    z = np.zeros_like(k)
    ys = np.concatenate([k, -k, z, z])
    xs = np.concatenate([z, z, k, -k])
    return ys, xs


@dataclass(frozen=True)
class ScanEvents:
    """Slices where the sweep sees things (from the object's slice profiles)."""

    visible: np.ndarray  # (n_slices,) bool: the slice shows the object
    first: int  # the object's first and last visible slice
    last: int
    widest: int  # its widest slice
    decision: int  # the first slice past it: the object has been seen whole
    guess: int  # where a premature guess is made,
    refuted: int  # and the slice that shows otherwise
    wrong: int  # the class guessed
    # The slice where the class shows, while its evidence is on screen or in the last few frames,
    # so the annotator selects it there: a torus's first slice with the hole; the second of two
    # spheres coming back after the dark gap; an ellipsoid's disc still wide more slices after it
    # reached full width than a sphere's disc that wide could be (for these three, the slice that
    # refutes a premature guess too); for a sphere, the GONE-th dark slice past it (longer than
    # any gap between two spheres) or the last slice of the stack, whichever comes first.
    deciding: int


def scan_events(t: ExplorationClassification3D) -> ScanEvents:
    """Where the sweep sees the object begin, widen, end, and where it is misread and refuted."""
    prof = t.profiles()
    peak = prof.max(1)
    top = float(peak.max())
    vis = peak >= VISIBLE * top
    ks = np.nonzero(vis)[0]
    z0, z1 = int(ks[0]), int(ks[-1])
    radii = np.arange(prof.shape[1]) * RADIAL_STEP
    zw = int(np.argmax((prof * radii[None, :]).sum(1)))
    zd = min(z1 + 1, t.n_slices - 1)
    half = prof >= 0.5 * top
    outer = half.shape[1] - 1 - np.argmax(half[:, ::-1], 1)  # last radius at half maximum
    width = np.where(half.any(1), outer * RADIAL_STEP, 0.0)
    if t.label == SPHERE:  # "it is still growing: a long one" -> it ends like a sphere
        wrong, zp, zn = ELLIPSOID, zw, zd
    elif t.label == ELLIPSOID:  # "the disc stopped growing: a sphere" -> it goes on and on
        zp = int(np.nonzero(width >= 0.9 * width.max())[0][0])
        zp = min(max(zp, z0 + 1), z1 - 2)
        zn = min(zp + int(math.ceil(width[zp] / t.params.z_step)) + 1, z1)
        wrong = SPHERE
    elif t.label == TORUS:  # "a faint blob: a sphere" -> the ring's hole comes into focus
        hole = vis & (prof[:, 0] < 0.3 * peak) & (peak >= 0.6 * top)
        zp = z0
        later = np.nonzero(hole[zp + 1:])[0]
        zn = zp + 1 + int(later[0]) if len(later) else zd
        wrong = SPHERE
    else:  # "it shrank and vanished: a sphere" -> a second one appears below
        s = t.shape
        g = int(round((t.cz - t.half_z + 2 * s["r1"] + s["gap"] / 2) / t.params.z_step))
        dark = np.nonzero(~vis[z0:g + 1])[0]
        zp = z0 + int(dark[0]) if len(dark) else g
        after = np.nonzero(vis[zp + 1:])[0]
        zn = zp + 1 + int(after[0]) if len(after) else zd
        wrong = SPHERE
    deciding = min(z1 + GONE, t.n_slices - 1) if t.label == SPHERE else int(zn)
    return ScanEvents(vis, z0, z1, zw, zd, int(zp), int(zn), wrong, deciding)


class ExplorationAnnotator(Annotator, task=ExplorationClassification3D):
    """Surveys the stack (default: down to the last slice, then up to the top pinning the object
    on its first visible slice from below; or straight up to the top), sweeps down the stack from
    the top (pinning the object on its first visible slice, if not pinned yet), selects the class
    on the slice where it shows (:attr:`ScanEvents.deciding`, while the evidence is on screen or in
    the last few frames) and (default) presses DONE on the next click.
    Personas may sweep on to the last slice first ("sweep"), or also come back up to the widest
    slice ("full").

    The policy reads the slice, the selected class and the crosshair, and remembers what it has
    seen: the slices of its sweep (begun at the top) and the wrong class it chose to leave
    standing (its premature guess, until the slice that refutes it, or a mistake it does not
    notice). Any other wrong class it removes at once.
    """

    persona: ExplorePersona
    task: ExplorationClassification3D

    def __init__(self, session, persona: ExplorePersona, rng: np.random.Generator):
        super().__init__(session, persona, rng)
        self.events = scan_events(self.task)
        self._swept: set[int] = set()  # slices seen since the sweep began at the top slice
        self._at_bottom = False  # the sweep has reached the last slice
        self._bottomed = False  # the survey has reached the last slice
        self._saw_wrong = False  # a wrong class was selected: the right one comes as a correction
        self._standing: tuple[int, int | None] | None = None  # (wrong class left, refuting slice)
        self._guessed = False  # the premature guess's occasion has come
        self._chose = False  # the first selection's occasion (a slip or not) has come

    def next_intent(self) -> Intent:
        t, p, ev = self.task, self.persona, self.events
        self._observe()
        if t.n_wrong() and not self._leaves_standing():
            if p.correct_by == "undo":
                return self.press("UNDO", "correct", 0, True)
            return self.press(CLASSES[t.label], "correct", 0, True)
        if not self._swept:
            return self._survey_step()
        if t.ann is None and ev.deciding in self._swept:
            return self._select()  # the class has shown (on this slice, or one passed)
        if t.ann is not None and p.scan == "select" and ev.deciding in self._swept:
            return self.press("DONE", "finish")  # the class is selected: CLASS <class> shows it
        if not self._at_bottom:
            return self._sweep_step()
        if t.ann is None:
            return self._select()
        if p.scan == "full" and t.z != ev.widest:
            return self.press("-Z" if t.z > ev.widest else "+Z", "verify", 0)
        return self.press("DONE", "finish")

    def _survey_step(self) -> Intent:
        t, p, ev = self.task, self.persona, self.events
        if p.survey != "stack":
            return self.press("-Z", "survey")
        if not self._bottomed:
            return self.press("+Z", "survey")
        if t.z == ev.last and not self._pin_on_object():
            return self.place(t.cx, t.cy, "inspect", 0)  # pin the crosshair on the object
        return self.press("-Z", "survey", 0 if t.z <= ev.last else -1)

    def _observe(self) -> None:
        t = self.task
        self._bottomed |= t.z == t.n_slices - 1
        if self._swept or (t.z == 0 and (self._bottomed or self.persona.survey != "stack")):
            self._swept.add(t.z)
            self._at_bottom |= t.z == t.n_slices - 1
        self._saw_wrong |= t.n_wrong() > 0

    def _leaves_standing(self) -> bool:
        """Whether the wrong class selected now is one it chose to leave for the moment."""
        if self._standing is None or self._standing[0] != self.task.ann:
            self._standing = None  # another hand changed the class: nothing is left on purpose
            return False
        refuted = self._standing[1]
        return refuted is None or refuted not in self._swept

    def _sweep_step(self) -> Intent:
        t, p, ev = self.task, self.persona, self.events
        z = t.z
        if z == ev.first and not self._pin_on_object():
            return self.place(t.cx, t.cy, "inspect", 0)  # pin the crosshair on the object
        if p.repin and z == ev.widest != ev.first and t.pin != self._centre_pin():
            # At the widest slice the object's centre is plainest: a careful click re-centres it.
            return self.place(t.cx, t.cy, "inspect", 0, sigma=0.0)
        if z == ev.guess and t.ann is None and not self._guessed:
            self._guessed = True
            if self.decide(("premature",), p.mistake_rate):
                # Jumps to a conclusion before the object has been seen whole.
                noticed = self.decide(("notice", "premature"), p.notice_rate)
                self._standing = (ev.wrong, ev.refuted if noticed else None)
                return self.press(CLASSES[ev.wrong], "select", 0)
        return self.press("+Z", "inspect" if ev.visible[z] else "navigate",
                          0 if z >= ev.first else -1)

    def _select(self) -> Intent:
        t, p = self.task, self.persona
        if not self._chose:
            self._chose = True
            if self.decide(("slip",), p.slip_rate):
                # Hits the neighbouring class button; the highlight and the status line show it.
                wrong = t.label + 1 if t.label + 1 < len(CLASSES) else t.label - 1
                if not self.decide(("notice", "slip"), p.slip_notice_rate):
                    self._standing = (wrong, None)
                return self.press(CLASSES[wrong], "select", 0)
        if self._saw_wrong:
            return self.press(CLASSES[t.label], "correct", 0, True)
        return self.press(CLASSES[t.label], "select", 0)

    def _pin_on_object(self) -> bool:
        """The crosshair is where this persona's pin on the object could land."""
        pin, m = self.task.pin, self.session.mapper
        return pin is not None and math.hypot(pin[0] - self.task.cx, pin[1] - self.task.cy) <= (
            self.persona.place_max + max(m.sx, m.sy))

    def _centre_pin(self) -> tuple[float, float]:
        """The crosshair of a click on the screen pixel nearest the object's centre."""
        m = self.session.mapper
        return m.to_data(*m.to_screen(self.task.cx, self.task.cy))
