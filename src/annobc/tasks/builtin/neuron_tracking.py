"""neuron_tracking: trace the neuron under the crosshair through every slice.

Analogue: skeleton tracing in electron-microscopy connectomics (CATMAID, webKnossos, Neuroglancer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from annobc.gui.raster import grey_to_rgb, line_pixels, mark_pixels
from annobc.tasks.textures import camera_noise
from annobc.tasks.annotator import Annotator, Intent
from annobc.tasks.base import Button, Effect, NO_EFFECT, Persona, Task
from annobc.tasks.instances import instance_file, load_instance  # noqa: F401

# -- EM texture bank ---------------------------------------------------------------------------
# The neuropil texture is a Voronoi-like tiling (an additively weighted Voronoi diagram, so cell
# borders curve) whose seeds drift slowly in z: each seed is a process running through the stack.
# It is shared by all episodes and computed one bank slice at a time on first use; an episode
# sees its own crop of it (offset, flips, z range and direction drawn from the scene's rng), so a
# scene costs nothing to set up and each slice is rendered once, when it is first viewed.
BANK_SIZE = 160  # bank slices are BANK_SIZE x BANK_SIZE data pixels
BANK_DEPTH = 64  # bank slices
BANK_CELL = 9.0  # mean seed spacing, data pixels
BANK_SEED = 20260611
NOISE_SIZE = 256
MEMBRANE = 48.0  # grey level of a membrane
BOX = 16  # side of the box a neurite profile is painted in, data pixels


@lru_cache(maxsize=1)
def _bank_seeds() -> dict:
    rng = np.random.default_rng(BANK_SEED)
    n = int(np.ceil(BANK_SIZE / BANK_CELL)) + 4  # two cells of margin on each side
    base = (np.arange(n) - 2 + 0.5) * BANK_CELL
    gy, gx = np.meshgrid(base, base, indexing="ij")
    return {
        "gy": gy + rng.uniform(-0.42, 0.42, (n, n)) * BANK_CELL,
        "gx": gx + rng.uniform(-0.42, 0.42, (n, n)) * BANK_CELL,
        "amp": rng.uniform(0.03, 0.15, (2, n, n)) * BANK_CELL,  # drift in z, data pixels
        "omega": 2 * np.pi / rng.uniform(30, 120, (2, n, n)),
        "phase": rng.uniform(0, 2 * np.pi, (2, n, n)),
        "weight": rng.uniform(-0.25, 0.25, (n, n)) * BANK_CELL,  # cell size variety
        "shade": rng.normal(148, 12, (n, n)),  # cytoplasm grey level of each process
        "mito": rng.random((n, n)) < 0.12,  # processes that show a mitochondrion
        "mito_angle": rng.uniform(0, np.pi, (n, n)),
    }


_BANK: dict[int, np.ndarray] = {}


def bank_slice(zb: int) -> np.ndarray:
    """Bank slice ``zb``: a (BANK_SIZE, BANK_SIZE) float32 EM-like texture (no noise)."""
    img = _BANK.get(zb)
    if img is None:
        img = _BANK[zb] = _render_bank_slice(zb)
    return img


def _render_bank_slice(zb: int) -> np.ndarray:
    p, s, g = _bank_seeds(), BANK_SIZE, BANK_CELL
    sy = p["gy"] + p["amp"][0] * np.sin(p["omega"][0] * zb + p["phase"][0])
    sx = p["gx"] + p["amp"][1] * np.sin(p["omega"][1] * zb + p["phase"][1])
    ys = np.arange(s, dtype=np.float64)
    cell = (ys // g).astype(np.intp) + 2
    d1 = np.full((s, s), 1e9)
    d2 = d1.copy()
    i1 = np.zeros((s, s), np.intp)
    j1 = i1.copy()
    for dy in (-2, -1, 0, 1, 2):  # seeds stay within 0.57 cells of their grid point: 5x5 is exact
        r = (cell + dy)[:, None]
        for dx in (-2, -1, 0, 1, 2):
            c = (cell + dx)[None, :]
            d = np.sqrt((sy[r, c] - ys[:, None]) ** 2 + (sx[r, c] - ys[None, :]) ** 2) - p["weight"][r, c]
            m = d < d1
            d2 = np.where(m, d1, np.minimum(d2, d))
            d1 = np.where(m, d, d1)
            i1 = np.where(m, r, i1)
            j1 = np.where(m, c, j1)
    img = p["shade"][i1, j1]
    # Cytoplasm grain, different on every section (as in serial-section EM).
    grain = np.random.default_rng([BANK_SEED, zb]).normal(0.0, 1.0, (s + 2, s + 2))
    grain = (grain[:-2, :-2] + grain[2:, 2:] + grain[:-2, 2:] + grain[2:, :-2] + grain[1:-1, 1:-1]) / 2.2
    img = img + 6.0 * grain
    # Mitochondria: dark granular ellipses inside some processes, turning slowly with z.
    has = p["mito"][i1, j1]
    ey = ys[:, None] - sy[i1, j1]
    ex = ys[None, :] - sx[i1, j1]
    a = p["mito_angle"][i1, j1] + 0.02 * zb
    cu, su = np.cos(a), np.sin(a)
    e = ((ex * cu + ey * su) / (0.3 * g)) ** 2 + ((-ex * su + ey * cu) / (0.14 * g)) ** 2
    img = np.where(has & (e < 1.0), img - 52.0 + 8.0 * grain, img)
    img = np.where(has & (np.abs(e - 1.0) < 0.35), img - 28.0, img)
    # Membranes: dark where the two nearest seeds are (nearly) equally near.
    gap = d2 - d1
    img = img + (MEMBRANE - img) * (0.88 * np.exp(-(gap / 1.1) ** 2))
    return img.astype(np.float32)


def noise_bank() -> np.ndarray:
    """A fixed field of unit-variance, slightly correlated noise, cropped per slice."""
    return camera_noise(NOISE_SIZE, BANK_SEED + 1)


@lru_cache(maxsize=4)
def scaled_noise_bank(sigma: float) -> np.ndarray:
    return noise_bank() * np.float32(sigma)


# -- scene ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Params:
    size: int = 112  # canvas data grid side, pixels
    n_slices: tuple[int, int] = (32, 48)
    n_neurites: tuple[int, int] = (5, 10)  # traced-looking neurites, the target included
    n_contacts: tuple[int, int] = (1, 3)  # of them, neurites that touch the target at one slice
    radius: tuple[float, float] = (2.0, 4.0)  # neurite cross-section radius, data pixels
    speed: tuple[float, float] = (0.5, 1.5)  # largest lateral drift per slice, data pixels
    contact_speed: tuple[float, float] = (1.2, 2.2)  # how fast a contact neurite slides past
    noise: float = 9.0  # standard deviation of the imaging noise, grey levels
    touch_gap: float = 0.4  # membrane gap between target and neighbour at a contact, pixels
    # An imported instance (``annobc import neuron``): an instance file, or an import folder whose
    # instance the scene seed picks (see tasks.instances). Set, it replaces the generated
    # scene: its slices, target and neighbours; the other parameters then play no part.
    instance: str = ""


@dataclass(frozen=True)
class Contact:
    z: int  # slice of closest approach (the membranes touch)
    neurite: int  # index of the neighbour in Task.centres


@dataclass(frozen=True)
class NeuronPersona(Persona):
    notice_rate: float = 0.97  # a wrong-neurite or slipped node is noticed and corrected
    peek_rate: float = 1.0  # peeks ahead (+Z, look, -Z) at a contact before deciding
    peek_depth: int = 1  # slices looked ahead when peeking
    swap_rate: float = 0.5  # follows the wrong neurite at a contact it did not peek at
    swap_rate_peeked: float = 0.2  # ... and at one it peeked at
    # Slices followed before the divergence is noticed: the default turns back on the first
    # slice past the contact, always (a length drawn at random is not on the screen).
    notice_delay: tuple[int, int] = (1, 1)
    slip_rate: float = 0.03  # a node placed on the membrane beside the profile
    # A slip UNDO can take back (the latest node, on this slice) is fixed by UNDO + place, else
    # by clicking again; below 1 the choice is a coin, as some personas do.
    slip_undo_rate: float = 1.0
    survey_rate: float = 0.0  # scrolls a few slices ahead and back before starting
    survey_depth: tuple[int, int] = (2, 4)  # ... this many slices (drawn once per episode)
    # Before DONE: "none" (DONE as soon as NODES Z/Z shows), "some" (a few slices back, at a
    # coin) or "all" (back through the stack to Z 0, then DONE).
    review: str = "none"
    review_notice: float = 0.9  # an overlooked wrong node is seen during the review

    MISTAKE_FIELDS: ClassVar[tuple[str, ...]] = Persona.MISTAKE_FIELDS + (
        "swap_rate", "swap_rate_peeked", "slip_rate")
    NOTICE_FIELDS: ClassVar[tuple[str, ...]] = Persona.NOTICE_FIELDS + ("review_notice",)


class NeuronTracking(Task):
    """Trace the neuron under the crosshair through every slice of an EM stack.

    ## Description
    A stack of 32-48 serial-section electron-microscopy slices: neuropil as a Voronoi-like tiling of
    processes (dark membranes, grey cytoplasm, mitochondria, noise) that drifts slowly in z, and
    5-10 traced-looking neurites, smooth 3D curves whose round cross-sections (radius 2-4 px) have a
    dark membrane ring around a lighter interior. The target neurite passes through the canvas
    centre at z = 0, where a crosshair marks it; one to three neighbours touch it (their membranes
    meet) at one slice each and slide past. The annotator must place one skeleton node inside the
    target's cross-section on every slice.

    ## Action Space
    A left click at a screen pixel. Buttons: ``+Z``, ``-Z`` (navigate), ``UNDO``, ``DONE``. A canvas
    click places the node for the current slice; a second click on the same slice replaces it
    (undoable).

    ## Observation Space
    The rendered screen: the current slice with its node (a bright dot), the previous slice's node
    drawn faintly in red and the next slice's node faintly in blue (as tracing tools draw the
    skeleton's neighbours on adjacent sections), the crosshair on slice 0, and the status lines
    ``TRACE NEURON  Z <z>/<Z-1>`` and ``NODES <n>/<Z>``.

    ## Rewards
    Zero until the episode ends, then accuracy x coverage: accuracy is the fraction of nodes inside
    the target's cross-section on their slice, coverage the fraction of slices with a node.

    ## Episode End
    DONE terminates; the env's step cap truncates. Success: accuracy >= 0.95 and coverage = 1.

    ## Arguments
    See :class:`Params`: stack depth, number of neurites and of contacts with the target, neurite
    radius, lateral drift, how fast a contact neurite slides past, imaging noise, membrane gap at
    a contact; or ``instance``, an imported volume and skeleton (``annobc import neuron``): its
    slices are shown instead, the crosshair marks the skeleton's first cross-section, and the
    target's cross-sections come from the skeleton's radii.

    ## Version History
    - v0: initial version.
    - v1: the annotator is a policy of the stack's state: from any state it removes the wrong
      nodes, traces the empty slices and finishes; its choices are keyed by slice and contact.
    - v2: the default persona decides on what the screen shows: DONE as soon as ``NODES Z/Z``
      shows (no review coin, no random review depth), no survey, a peek at every contact, a
      wrong turn always turned back on the first slice past the contact, and one correction
      rule for demonstrations and labels (UNDO where UNDO takes the wrong node back, pressed on
      that node's slice; else a re-click), so UNDO removes only a node drawn on screen.
      The DONE button is drawn lit while the status shows ``NODES Z/Z`` (``complete()``).
    """

    task_id = "neuron_tracking"
    version = 2
    instruction = "Trace the neuron under the crosshair: place one node on it in every slice."
    Params = Params
    buttons = (Button("+Z", "navigate"), Button("-Z", "navigate"), Button("UNDO", "undo"),
               Button("DONE", "done"))
    _images: np.ndarray | None = None  # (Z, size, size) uint8 slices of an imported instance
    # A wrong turn shows at most 3 slices past the contact: back 3 slices, and UNDO.
    correction_length = 4
    personas = {
        "default": NeuronPersona(),
        "careful": NeuronPersona(peek_rate=1.0, peek_depth=2, swap_rate_peeked=0.1,
                                 notice_delay=(1, 2), slip_rate=0.02, slip_undo_rate=0.7,
                                 survey_rate=1.0, review="all", notice_rate=0.99),
        "hasty": NeuronPersona(peek_rate=0.25, swap_rate=0.45, notice_delay=(2, 3),
                               slip_rate=0.045, slip_undo_rate=0.5, survey_rate=0.0,
                               review="none", notice_rate=0.93, place_sigma=0.5),
    }

    # -- scene ---------------------------------------------------------------------------------
    def setup(self, rng: np.random.Generator) -> None:
        p = self.params
        if p.instance:
            self._setup_instance(load_instance(p.instance, self.seed, self.task_id))
            return
        Z = self.n_slices = int(rng.integers(p.n_slices[0], p.n_slices[1] + 1))
        n_total = int(rng.integers(p.n_neurites[0], p.n_neurites[1] + 1))
        n_contacts = int(rng.integers(p.n_contacts[0], p.n_contacts[1] + 1))
        if not 48 <= p.size <= BANK_SIZE:
            raise ValueError(f"size must be within 48..{BANK_SIZE}, got {p.size}")
        zs = np.arange(Z, dtype=np.float64)
        centre = self.centre = float(p.size // 2)  # the target's pixel at z = 0, under the crosshair
        self.cross = (centre, centre)  # where the crosshair is drawn on slice 0, (u, v)
        lo = 14.0  # the target keeps this far from the border

        centres: list[np.ndarray] = []
        radii: list[np.ndarray] = []
        shades: list[float] = []
        # The target: through the centre at z = 0, kept well inside the canvas.
        path = self._path(rng, zs, np.array([centre, centre]))
        dev = path - centre
        worst = float(np.abs(dev).max())
        if worst > centre - lo:
            path = centre + dev * ((centre - lo) / worst)
        centres.append(path)
        radii.append(self._radius(rng, zs))
        shades.append(float(rng.uniform(168, 188)))

        # Neighbours that touch the target at one slice and slide past it.
        self.contacts: list[Contact] = []
        for _ in range(n_contacts if Z >= 12 else 0):
            zc = None
            for _try in range(20):
                cand = int(rng.integers(3, Z - 5))
                if all(abs(cand - c.z) >= 8 for c in self.contacts):
                    zc = cand
                    break
            if zc is None:
                break
            r = self._radius(rng, zs)
            ang = float(rng.uniform(0, 2 * np.pi))
            normal = np.array([math.cos(ang), math.sin(ang)])
            side = np.array([-normal[1], normal[0]]) * (1 if rng.random() < 0.5 else -1)
            s = float(rng.uniform(*p.contact_speed))
            curve = float(rng.uniform(0.08, 0.25))
            dz = zs - zc
            d0 = radii[0][zc] + r[zc] + p.touch_gap
            off = normal[None, :] * (d0 + curve * dz ** 2)[:, None] + side[None, :] * (s * dz)[:, None]
            gap = np.hypot(*off.T) - radii[0] - r
            if gap.min() < p.touch_gap - 1e-9:  # radii vary along z: keep the membranes apart
                off = off + normal[None, :] * (p.touch_gap - gap.min())
            self.contacts.append(Contact(zc, len(centres)))
            centres.append(path + off)
            radii.append(r)
            shades.append(float(np.clip(shades[0] + rng.normal(0, 3), 160, 196)))

        # Free neurites: never closer than 3 px (membrane to membrane) to the target.
        for _ in range(n_total - len(centres)):
            for _try in range(30):
                start = rng.uniform(6, p.size - 7, 2)
                c = self._path(rng, zs, start)
                r = self._radius(rng, zs)
                ok = True
                for k, (c2, r2) in enumerate(zip(centres, radii)):
                    g = np.hypot(*(c - c2).T) - r - r2
                    if g.min() < (3.0 if k == 0 else 1.0):
                        ok = False
                        break
                if ok:
                    centres.append(c)
                    radii.append(r)
                    shades.append(float(rng.uniform(162, 190)))
                    break

        self.centres = np.stack(centres)  # (N, Z, 2): (u, v) of each neurite on each slice
        self.radii = np.stack(radii)  # (N, Z)
        self.shades = np.array(shades)
        # Each episode sees its own crop of the texture bank and of the noise bank.
        self._zb0 = int(rng.integers(0, max(BANK_DEPTH - Z, 0) + 1))
        self._zdir = 1 if rng.random() < 0.5 else -1
        self._crop = rng.integers(0, BANK_SIZE - p.size + 1, 2)
        self._flip = rng.random(3) < 0.5  # flip rows, flip columns, transpose
        self._noise_offsets = rng.integers(0, NOISE_SIZE - p.size, (Z, 2))
        self._brightness = rng.normal(0.0, 4.0, Z)  # sections vary a little in brightness
        # GUI state
        self.z = 0
        # Per slice: None, or the node (u, v, inside), `inside` judged against the target once,
        # when the node is placed.
        self.ann: tuple = (None,) * Z

    def _setup_instance(self, data: dict) -> None:
        """The scene of an imported instance: its slices (real image data on the task's grid), the
        target's cross-sections from the skeleton (``centres[0]``, ``radii[0]``), the other traced
        neurites that pass through these slices (NaN where one is not on a slice) and the slices
        where one touches the target (``contacts``: slice, neurite)."""
        images = data["images"]
        Z, h, w = images.shape
        if (h, w) != (self.params.size, self.params.size):
            raise ValueError(f"instance {data['name']} is on a {h}x{w} grid; set "
                             f"{self.task_id}.size={h}")
        self.n_slices = Z
        self._images = images
        self.centres = np.asarray(data["centres"], np.float64)  # (N, Z, 2)
        self.radii = np.asarray(data["radii"], np.float64)  # (N, Z)
        self.shades = np.full(len(self.centres), 176.0)
        self.contacts = [Contact(int(z), int(k)) for z, k in data["contacts"]]
        self.cross = (float(self.centres[0, 0, 0]), float(self.centres[0, 0, 1]))
        self.centre = None  # the generated scene's crosshair pixel; an instance has ``cross``
        self.z = 0
        self.ann = (None,) * Z

    def _path(self, rng: np.random.Generator, zs: np.ndarray, start: np.ndarray) -> np.ndarray:
        """A smooth curve through ``start`` at z = 0: drift plus two slow sinusoids per axis."""
        out = np.empty((len(zs), 2))
        for a in range(2):
            f = rng.uniform(-0.4, 0.4) * zs
            for _ in range(2):
                w = 2 * np.pi / rng.uniform(20, 90)
                ph = rng.uniform(0, 2 * np.pi)
                f = f + rng.uniform(2, 10) * (np.sin(w * zs + ph) - np.sin(ph))
            out[:, a] = f
        speed = float(np.hypot(*np.diff(out, axis=0).T).max())
        out *= float(rng.uniform(*self.params.speed)) / max(speed, 1e-6)
        return out + start[None, :]

    def _radius(self, rng: np.random.Generator, zs: np.ndarray) -> np.ndarray:
        r0 = rng.uniform(*self.params.radius)
        return r0 * (1 + 0.1 * np.sin(2 * np.pi * zs / rng.uniform(15, 40) + rng.uniform(0, 2 * np.pi)))

    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.params.size, self.params.size)

    # -- GUI state machine ----------------------------------------------------------------------
    def press_button(self, label: str) -> Effect:
        if label == "+Z":
            self.z = min(self.z + 1, self.n_slices - 1)
        elif label == "-Z":
            self.z = max(self.z - 1, 0)
        return NO_EFFECT

    def click_canvas(self, u: float, v: float) -> Effect:
        self.checkpoint()
        z = self.z
        ok = self.inside(z, u, v)
        self.ann = self.ann[:z] + ((float(u), float(v), ok),) + self.ann[z + 1:]
        return Effect(annotated=True, wrong=not ok)

    def inside(self, z: int, u: float, v: float, k: int = 0) -> bool:
        """Is (u, v) inside neurite ``k``'s cross-section on slice ``z``? (k = 0: the target)"""
        cu, cv = self.centres[k, z]
        return math.hypot(u - cu, v - cv) <= self.radii[k, z] + 0.5

    # -- rendering ------------------------------------------------------------------------------
    def view_key(self):
        return self.z

    def canvas_key(self):
        return (self.z, self.ann)

    def render_view(self, key: int) -> np.ndarray:
        return self._render_slice(key)

    def _render_slice(self, z: int) -> np.ndarray:
        if self._images is not None:  # an imported instance: its own slice
            return np.repeat(self._images[z][:, :, None], 3, axis=2)
        p, s = self.params, self.params.size
        zb = self._zb0 + (z if self._zdir > 0 else self.n_slices - 1 - z)
        zb = zb % (2 * BANK_DEPTH - 2)  # a stack deeper than the bank runs back through it
        zb = zb if zb < BANK_DEPTH else 2 * BANK_DEPTH - 2 - zb
        oy, ox = self._crop
        img = bank_slice(zb)[oy:oy + s, ox:ox + s]
        if self._flip[0]:
            img = img[::-1]
        if self._flip[1]:
            img = img[:, ::-1]
        if self._flip[2]:
            img = img.T
        img = np.array(img, np.float32)
        self._paint_profiles(img, z)
        ny, nx = self._noise_offsets[z]
        img += scaled_noise_bank(p.noise)[ny:ny + s, nx:nx + s]
        img += self._brightness[z]
        return grey_to_rgb(np.clip(img, 0, 255, out=img).astype(np.uint8))

    def _paint_profiles(self, img: np.ndarray, z: int) -> None:
        """Neurite cross-sections: lighter cytoplasm inside a dark membrane ring."""
        base, mul, add, boxes = self._stamps()
        s = img.shape[0]
        for k in boxes[z]:
            x0, y0 = base[k][z]
            # Clip the box to the slice (profiles near the border paint in part).
            ax, ay = max(0, -x0), max(0, -y0)
            bx, by = min(BOX, s - x0), min(BOX, s - y0)
            patch = img[y0 + ay:y0 + by, x0 + ax:x0 + bx]
            patch *= mul[k, z, ay:by, ax:bx]
            patch += add[k, z, ay:by, ax:bx]

    def _stamps(self):
        """Every profile of every slice as ``patch * mul + add`` on a BOX x BOX box, computed at once
        on the first rendered slice (cheaper than slice by slice); ``boxes[z]``: neurites on view."""
        st = self.__dict__.get("_stamp_cache")
        if st is not None:
            return st
        c = self.centres.astype(np.float32)  # (N, Z, 2)
        base = np.floor(c).astype(np.intp) - (BOX // 2 - 1)  # box origin, data pixels
        k = np.arange(BOX, dtype=np.float32)
        off = base.astype(np.float32) - c  # (N, Z, 2), all float32 from here on
        dx = off[..., 0, None] + k  # (N, Z, BOX)
        dy = off[..., 1, None] + k
        d = np.sqrt(dy[..., :, None] ** 2 + dx[..., None, :] ** 2)  # (N, Z, BOX, BOX)
        r = self.radii.astype(np.float32)[..., None, None]
        wi = np.clip((r - 0.4 - d) * 1.25 + 0.5, 0.0, 1.0)  # cytoplasm weight
        am = 0.92 * np.exp(-(((d - r) * (1 / 0.75)) ** 2))  # membrane weight
        keep_m = 1.0 - am
        mul = (1.0 - wi) * keep_m  # cytoplasm over the texture, then the membrane over that
        add = self.shades.astype(np.float32)[:, None, None, None] * wi * keep_m + MEMBRANE * am
        s = self.params.size
        on = np.all((base > -BOX) & (base < s), axis=2)  # (N, Z)
        boxes = [[k for k, v in enumerate(row) if v] for row in on.T.tolist()]
        st = self._stamp_cache = (base.tolist(), mul, add, boxes)
        return st

    def draw_overlays(self, canvas: np.ndarray, mapper) -> None:
        # The marks of a slice, as pixel lists per colour in drawing order, gathered once per
        # slice while the nodes stand.
        for ys, xs, color in self.memo(("overlay", self.z, mapper, canvas.shape),
                                       lambda: self._overlay_pixels(mapper, *canvas.shape[:2])):
            canvas[ys, xs] = color

    def _overlay_pixels(self, mapper, h: int, w: int) -> list:
        r = max(1, round(mapper.pixel_size))
        z, ann = self.z, self.ann
        out = []
        if z > 0 and ann[z - 1] is not None:
            out.append((*mark_pixels("x", r, *mapper.to_canvas_px(*ann[z - 1][:2]), h, w), PREV_COLOR))
        if z + 1 < self.n_slices and ann[z + 1] is not None:
            out.append((*mark_pixels("x", r, *mapper.to_canvas_px(*ann[z + 1][:2]), h, w), NEXT_COLOR))
        if ann[z] is not None:
            out.append((*mark_pixels("cross", r, *mapper.to_canvas_px(*ann[z][:2]), h, w), NODE_COLOR))
        if z == 0:
            x, y = mapper.to_canvas_px(*self.cross)
            a, b = round(6 * mapper.pixel_size), round(10 * mapper.pixel_size)
            lines = [line_pixels(x - b, y, x - a, y, h, w), line_pixels(x + a, y, x + b, y, h, w),
                     line_pixels(x, y - b, x, y - a, h, w), line_pixels(x, y + a, x, y + b, h, w)]
            out.append((np.concatenate([q[0] for q in lines]), np.concatenate([q[1] for q in lines]),
                        CROSS_COLOR))
        return out

    def status(self) -> tuple[str, ...]:
        return (f"TRACE NEURON  Z {self.z}/{self.n_slices - 1}",
                f"NODES {self.n_nodes()}/{self.n_slices}")

    def complete(self) -> bool:
        return self.n_nodes() == self.n_slices  # NODES Z/Z

    def undo_change(self) -> tuple[int, tuple | None] | None:
        """The slice UNDO would change and the node it would put back there (None: no node), or
        None where UNDO would change nothing. Every canvas click changes one slice's node, so an
        UNDO changes at most one."""
        if not self._undo_stack:
            return None
        before = self._undo_stack[-1]
        return next(((z, a) for z, (a, b) in enumerate(zip(before, self.ann)) if a != b), None)

    # -- latents and score ----------------------------------------------------------------------
    def position(self) -> float:
        return self.z / (self.n_slices - 1)

    def target_point(self, k: int) -> tuple[float, float] | None:
        """The target neurite's centre on the slice on view (k = 0, the only item)."""
        if k != 0:
            return None
        u, v = self.centres[0, self.z]
        return float(u), float(v)

    def n_nodes(self) -> int:
        return self.memo("n_nodes", lambda: sum(n is not None for n in self.ann))

    def wrong_slices(self) -> tuple[int, ...]:
        """Slices whose node lies outside the target's cross-section."""
        return self.memo("wrong", lambda: tuple(
            z for z, n in enumerate(self.ann) if n is not None and not n[2]))

    def n_wrong(self) -> int:
        return len(self.wrong_slices())

    def score(self) -> tuple[float, bool]:
        n = self.n_nodes()
        if n == 0:
            return 0.0, False
        accuracy = (n - self.n_wrong()) / n
        coverage = n / self.n_slices
        return accuracy * coverage, accuracy >= 0.95 and n == self.n_slices


NODE_COLOR = (255, 230, 40)  # this slice's node, bright
PREV_COLOR = (190, 95, 95)  # the previous slice's node, faint (muted red)
NEXT_COLOR = (95, 130, 190)  # the next slice's node, faint (muted blue)
CROSS_COLOR = (60, 255, 90)


class NeuronAnnotator(Annotator, task=NeuronTracking):
    """Clicks the target's cross-section, +Z, repeats; peeks ahead at contacts; undoes wrong turns.

    A policy of the stack's nodes and the slice on view. In order: finish a survey or a wrong turn
    it is following; otherwise go to the nearest run of wrong nodes it knows of and remove them
    (UNDO on the slice of the node it takes back, where that node is the latest one; else a click
    on the target); otherwise the next empty slice, on up from here and then down for any left
    behind, peeking ahead first at a contact; then the persona's review back down the stack (the
    default has none: DONE as soon as the status shows ``NODES Z/Z``), and DONE.

    It remembers what it has seen: the slices it has seen a node on (the persona's slips and
    wrong turns happen on a slice's first node), the wrong nodes it has judged and those it
    overlooked (until a review finds them), which contacts it peeked at, and the plan it is on.
    """

    persona: NeuronPersona
    task: NeuronTracking
    TARGET = 0  # the traced neurite: the only ground-truth item
    REVIEW_SOME_RATE = 0.5  # review="some" scrolls back before DONE in this share of episodes

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        t = self.task
        self._contact_at = {c.z: c for c in t.contacts}
        self._started = False
        self._seen: set[int] = set()  # slices seen holding a node
        self._judged: dict[int, tuple] = {}  # slice -> the wrong node there it has judged
        self._overlooked: set[int] = set()  # slices whose judged wrong node it did not notice
        self._peeked: set[int] = set()  # contact slices it has looked beyond
        self._peek_considered: set[int] = set()
        self._review_considered = False
        self._survey: _Excursion | None = None
        self._peek: _Excursion | None = None
        self._review: _Excursion | None = None
        self._turn: _WrongTurn | None = None
        self._fixing: int | None = None  # the slice of the wrong node it is removing

    def next_intent(self) -> Intent:
        t = self.task
        if not self._started:
            self._started = True
            self._consider_survey()
        self._observe()
        if self._survey is not None:
            step = self._excursion_step(self._survey) if t.n_nodes() == 0 else None
            if step is not None:
                return step
            self._survey = None
        if self._turn is not None:
            step = self._follow_neighbour(self._turn)
            if step is not None:
                return step
            self._turn = None  # the divergence shows (or the state left the plan)
        known = self._known_wrong()
        if known:
            return self._correct(known)
        empty = [z for z, node in enumerate(t.ann) if node is None]
        if empty:
            return self._trace(empty)
        if self._review is not None:
            step = self._excursion_step(self._review)
            if step is not None:
                return step
        return self.press("DONE", "finish")

    # -- what it has seen -------------------------------------------------------------------
    def _consider_survey(self) -> None:
        """Before starting on a fresh stack, maybe scroll a few slices ahead and back."""
        t, p = self.task, self.persona
        if t.z == 0 and t.n_nodes() == 0 and self.decide(("survey",), p.survey_rate):
            lo, hi = p.survey_depth
            depth = int(self.draw(("survey_depth",)).integers(lo, hi + 1))
            self._survey = _Excursion(depth, 0, "survey")

    def _observe(self) -> None:
        """Take in the state: the nodes seen, new wrong nodes noticed or not, a review begun."""
        t, p = self.task, self.persona
        self._seen.update(z for z, node in enumerate(t.ann) if node is not None)
        for z in [z for z, node in self._judged.items() if t.ann[z] != node]:  # gone or replaced
            del self._judged[z]
            self._overlooked.discard(z)
        for z in t.wrong_slices():
            if z in self._judged:
                continue
            self._judged[z] = t.ann[z]
            # The nodes of a wrong turn it follows are noticed where the profiles diverge.
            if not self._following(z) and not self.decide(("notice", z), p.notice_rate):
                self._overlooked.add(z)
        if (not self._review_considered and t.n_nodes() == t.n_slices
                and not self._known_wrong()):
            self._review_considered = True
            back = self._review_depth()
            if back:
                self._review = _Excursion(max(t.z - back, 0), None, "verify")
        if (self._review is not None and t.z in self._overlooked
                and self.decide(("review_notice", t.z), p.review_notice)):
            self._overlooked.discard(t.z)

    def _review_depth(self) -> int:
        """How many slices back it scrolls before DONE."""
        p = self.persona
        if p.review == "all":
            return self.task.n_slices - 1
        if p.review == "some" and self.decide(("review",), self.REVIEW_SOME_RATE):
            return int(self.draw(("review_depth",)).integers(3, 7))
        return 0

    def _following(self, z: int) -> bool:
        w = self._turn
        return w is not None and w.start <= z < w.start + w.length

    def _known_wrong(self) -> list[int]:
        return [z for z in self.task.wrong_slices()
                if z not in self._overlooked and not self._following(z)]

    # -- steps --------------------------------------------------------------------------------
    def _excursion_step(self, e: "_Excursion") -> Intent | None:
        """The next click of a scroll out to ``e.to`` (and back to ``e.back_to``); None once over."""
        t = self.task
        if t.z == e.to:
            e.turned = True
        goal = e.back_to if e.turned else e.to
        if goal is None or t.z == goal:
            return None
        return self.press("+Z" if goal > t.z else "-Z", e.phase, self.TARGET)

    def _follow_neighbour(self, w: "_WrongTurn") -> Intent | None:
        """The next click of a wrong turn: a node on the neighbour, +Z, until one slice past the
        last of them, where the two have diverged. None there, or where the state left the plan."""
        t = self.task
        z, end = t.z, w.start + w.length
        if not w.start <= z < end or any(not _wrong(t.ann[j]) for j in range(w.start, z)):
            return None
        node = t.ann[z]
        if node is None:
            return self._place_on(z, w.neurite, "place")
        if node[2]:
            return None
        return self.press("+Z", "inspect" if z == end - 1 else "navigate", self.TARGET)

    def _correct(self, known: list[int]) -> Intent:
        """The nearest run of wrong nodes: where UNDO takes one of them back (the latest node),
        to that node's slice, where it is drawn, and UNDO; else to the run's first slice (where
        the trace went wrong) and a click on the target there. The same rule labels and
        demonstrates: the state (what UNDO would change) decides, not the mistake's history."""
        t, p = self.task, self.persona
        runs = _runs(known)
        first, last = min(runs, key=lambda r: (max(r[0] - t.z, t.z - r[1], 0), r[0]))
        self._fixing = first
        undo = t.undo_change()
        undo_fixes = undo is not None and first <= undo[0] <= last and not _wrong(undo[1])
        # A wrong turn is cut by UNDO; a slip is undone (or, for a persona's coin, clicked again).
        by_undo = undo_fixes and (first in self._contact_at
                                  or self.decide(("undo", first), p.slip_undo_rate))
        goal = undo[0] if by_undo else first
        if t.z != goal:
            return self.press("+Z" if goal > t.z else "-Z", "correct", self.TARGET, True)
        if by_undo:
            return self.press("UNDO", "correct", self.TARGET, True)
        self._fixing = None
        return self._place_on(first, self.TARGET, "correct", True)

    def _trace(self, empty: list[int]) -> Intent:
        """Towards the next empty slice and a node on the target there."""
        t, p = self.task, self.persona
        if self._peek is not None:
            peek, self._peek = self._peek, None
            if t.ann[peek.back_to] is None:
                step = self._excursion_step(peek)
                if step is not None:
                    self._peek = peek
                    return step
                self._peeked.add(peek.back_to)
        ahead = [z for z in empty if z >= t.z]
        z = min(ahead) if ahead else max(empty)
        if t.z != z:
            return self.press("+Z" if z > t.z else "-Z", "navigate", self.TARGET)
        if z == self._fixing:  # the slice of a wrong node it has just taken back
            self._fixing = None
            return self._place_on(z, self.TARGET, "correct", True)
        if z not in self._seen:  # a slice's first node: where the persona's choices come in
            if z in self._contact_at:
                return self._at_contact(self._contact_at[z])
            if self.decide(("slip", z), p.slip_rate):
                return self._slip(z)
        return self._place_on(z, self.TARGET, "place")

    def _at_contact(self, c: Contact) -> Intent:
        """Where a neighbour touches the target: maybe peek ahead, then a node on the target or on
        the neighbour."""
        t, p = self.task, self.persona
        if c.z not in self._peek_considered:
            self._peek_considered.add(c.z)
            ahead = min(c.z + p.peek_depth, t.n_slices - 1)
            if ahead > c.z and self.decide(("peek", c.z), p.peek_rate):
                self._peek = _Excursion(ahead, c.z, "inspect")
                return self._excursion_step(self._peek)
        rate = p.swap_rate_peeked if c.z in self._peeked else p.swap_rate
        if not self.decide(("turn", c.z), rate):
            return self._place_on(c.z, self.TARGET, "place")
        # Takes the neighbour. Noticed, it is followed for a few slices until they diverge;
        # overlooked, the trace picks the target up again on the next slice by continuity.
        if self.decide(("notice", c.z), p.notice_rate):
            lo, hi = p.notice_delay
            length = int(self.draw(("turn_length", c.z)).integers(lo, hi + 1))
            self._turn = _WrongTurn(c.z, c.neurite, length)
        return self._place_on(c.z, c.neurite, "place")

    def _slip(self, z: int) -> Intent:
        """A node on the membrane beside the target's profile."""
        t = self.task
        g = self.draw(("slip_where", z))
        ang = g.uniform(0, 2 * np.pi)
        dist = t.radii[0, z] + g.uniform(1.8, 3.0)
        cu, cv = t.centres[0, z]
        return self.place(cu + dist * np.cos(ang), cv + dist * np.sin(ang), "place", self.TARGET,
                          sigma=0.0)

    def _place_on(self, z: int, k: int, phase: str, correction: bool = False) -> Intent:
        """A click on neurite ``k``'s profile at slice z (a wrong one when k is not the target)."""
        t = self.task
        cu, cv = t.centres[k, z]
        it = self.place(cu, cv, phase, self.TARGET, correction)
        if k != 0 and t.inside(z, *self.session.mapper.to_data(it.x, it.y)):
            # Noise carried it onto the target's membrane: aim at the neighbour's far side.
            d = np.array([cu, cv]) - t.centres[0, z]
            d = d / max(float(np.hypot(*d)), 1e-6)
            it = self.place(cu + d[0], cv + d[1], phase, self.TARGET, correction, sigma=0.0)
        return it


@dataclass
class _Excursion:
    """A scroll out to slice ``to`` and back to ``back_to`` (None: no way back), e.g. a peek."""

    to: int
    back_to: int | None
    phase: str
    turned: bool = False  # has reached ``to``


@dataclass(frozen=True)
class _WrongTurn:
    """Following a neighbour from the contact slice ``start`` for ``length`` slices."""

    start: int
    neurite: int
    length: int


def _wrong(node: tuple | None) -> bool:
    return node is not None and not node[2]


def _runs(slices: list[int]) -> list[tuple[int, int]]:
    """Sorted slices as runs of consecutive ones, (first, last)."""
    runs: list[tuple[int, int]] = []
    for z in sorted(slices):
        if runs and z == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], z)
        else:
            runs.append((z, z))
    return runs
