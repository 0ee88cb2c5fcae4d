"""animal_limb_tracking: label the pose keypoints of a walking animal in every labelled frame.

Analogue: pose labelling for markerless motion capture (the labelling GUI of a DeepLabCut-style
pose-estimation toolkit: one tab per body part, a frame list, a click places the selected part).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar

import numpy as np

from annobc.gui.raster import blend_pixels, mark_offsets
from annobc.tasks.annotator import Annotator, Intent
from annobc.tasks.base import Button, Effect, NO_EFFECT, Persona, Task
from annobc.tasks.instances import instance_file, load_instance  # noqa: F401

KEYPOINTS = ("NOSE", "TAIL", "FL", "FR", "HL", "HR")
NOSE, TAIL, FL, FR, HL, HR = range(6)
N_KP = len(KEYPOINTS)
MIRROR = {FL: FR, FR: FL, HL: HR, HR: HL}  # left <-> right of the same leg pair
PAIR = {FL: FL, FR: FL, HL: HL, HR: HL}  # the leg pair of a paw, named by its left paw
# Marker colour and shape per keypoint: left legs are crosses, right legs squares.
KP_COLORS = ((255, 50, 50), (255, 225, 30), (40, 220, 255), (255, 140, 20), (60, 255, 110),
             (235, 70, 255))
KP_SHAPES = ("x", "x", "cross", "square", "cross", "square")
FAINT_ALPHA = 0.45  # previous frame's keypoints
PCK_PX = 3.0  # a keypoint is correct within this many data pixels of the ground truth
SUCCESS_PCK = 0.9
NOISE_BANK = 512

# Body plan in body lengths (nose tip to tail base), in straight body coordinates: a forward along
# the spine from the body centre, b towards the animal's left.
TRUNK_C, TRUNK_A, TRUNK_B, TRUNK_TAPER = -0.08, 0.38, 0.155, 0.12  # wider at the hips
HEAD_C, HEAD_A, HEAD_B, HEAD_TAPER = 0.335, 0.185, 0.10, 0.5  # pointed snout
NOSE_A, TAILBASE_A = 0.515, -0.46
EAR_A, EAR_B, EAR_R = 0.25, 0.105, 0.055
EYE_A, EYE_B, EYE_R = 0.40, 0.062, 0.022
FRONT_A, FRONT_B, SHOULDER_A, SHOULDER_B = 0.19, 0.215, 0.16, 0.08
HIND_A, HIND_B, HIP_A, HIP_B = -0.30, 0.23, -0.27, 0.10
PAW_R, LEG_R = 0.042, 0.024
TAIL_START, TAIL_LEN, TAIL_AMP, TAIL_R0, TAIL_R1 = -0.44, 0.85, 0.07, 0.034, 0.012
BEND_GAIN = 1.6  # spine bend per unit turn rate (the body curves into a turn)

# (floor colour, texture amplitude, grid line contrast, coats that stand out on it)
FLOORS = (
    ((188, 174, 146), 16.0, 0.0, ("black", "brown")),  # wood-chip bedding
    ((196, 198, 201), 6.0, -14.0, ("black", "brown")),  # white acrylic open field with a grid
    ((64, 68, 78), 6.0, 12.0, ("white", "agouti")),  # dark arena floor with a grid
)
# coat, ears, tail, paws/nose
COATS = {
    "black": ((42, 38, 36), (78, 60, 60), (84, 74, 74), (226, 156, 156)),
    "brown": ((112, 84, 60), (160, 116, 100), (160, 128, 116), (232, 164, 160)),
    "white": ((228, 224, 216), (238, 186, 186), (232, 186, 180), (244, 168, 168)),
    "agouti": ((150, 122, 92), (190, 146, 130), (186, 152, 140), (236, 170, 164)),
}

COAT_ARRAYS = {k: tuple(np.asarray(c, np.float32) for c in v) for k, v in COATS.items()}
EYE_COLOR = np.asarray((20, 16, 16), np.float32)


def unit(x: np.ndarray) -> np.ndarray:
    """x clipped to [0, 1] in place (x is a temporary); cheaper than np.clip on small arrays."""
    return np.minimum(np.maximum(x, 0.0, out=x), 1.0, out=x)


_DISCS: dict = {}


def disc_alpha(qx: int, qy: int, r8: int) -> np.ndarray:
    """Coverage (n, n, 1) of a soft disc of radius r8/8 px centred (qx/8, qy/8) px off the
    middle pixel of the patch; cached, since discs repeat with the same subpixel offsets."""
    key = (qx, qy, r8)
    a = _DISCS.get(key)
    if a is None:
        r = r8 / 8.0
        c = int(math.ceil(r + 1.0))
        d = np.arange(-c, c + 1, dtype=np.float32)
        dist = np.hypot(d[None, :] - qx / 8.0, d[:, None] - qy / 8.0)
        a = _DISCS[key] = unit(r + 0.5 - dist)[:, :, None]
    return a


@lru_cache(maxsize=1)
def noise_bank() -> np.ndarray:
    """A fixed field of smooth unit-variance noise (two scales), shared by floors and fur."""
    rng = np.random.default_rng(20261205)
    fine = rng.normal(0.0, 1.0, (NOISE_BANK, NOISE_BANK))
    coarse = rng.normal(0.0, 1.0, (NOISE_BANK // 4 + 1, NOISE_BANK // 4 + 1))
    coarse = np.kron(coarse, np.ones((4, 4)))[:NOISE_BANK, :NOISE_BANK]
    k = np.ones(5) / 5.0  # box-blur the blocky coarse field into blotches
    coarse = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 0, coarse)
    coarse = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, coarse)
    fine = 0.5 * (fine + np.roll(fine, 1, 0))
    n = 0.6 * fine / fine.std() + 0.8 * coarse / coarse.std()
    return (n / n.std()).astype(np.float32)


_EMPTY_OVERLAY = (np.zeros(0, np.intp), np.zeros(0, np.intp), np.zeros((0, 3), np.uint8))


@dataclass(frozen=True)
class Params:
    size: int = 112  # canvas data grid side, pixels
    n_frames: tuple[int, int] = (6, 10)  # labelled frames
    body_length: tuple[float, float] = (36.0, 44.0)  # nose tip to tail base, pixels
    speed: tuple[float, float] = (3.0, 5.0)  # body displacement per frame, pixels
    turn_rate: float = 0.12  # largest mean heading change per frame, radians
    gait_step: tuple[float, float] = (1.3, 2.1)  # gait phase advance per frame, radians
    stride: tuple[float, float] = (0.07, 0.10)  # paw swing amplitude, fraction of body length
    texture: float = 1.0  # scale of the floor texture and fur noise
    margin: float = 5.0  # keypoints stay this far inside the canvas, pixels
    # An imported instance (``annobc import pose``): an instance file, or an import folder whose
    # instance the scene seed picks (see tasks.instances). Set, it replaces the generated
    # video: its frames and labelled keypoints; the other parameters play no part.
    instance: str = ""


@dataclass(frozen=True)
class LimbPersona(Persona):
    notice_rate: float = 0.92  # notices a wrong-tab slip, or a consistent left/right swap
    order: str = "head_to_tail"  # keypoint order in a frame: "head_to_tail" or "legs_first"
    zigzag: bool = False  # reverse the order every other frame (saves a tab click)
    swap_rate: float = 0.05  # per leg pair per frame: takes the animal's left for its right
    swap_notice_now: float = 0.6  # sees the swap as soon as the first marker lands
    wrong_tab_rate: float = 0.025  # per keypoint: forgets to switch tabs before placing
    frame_check: float = 0.9  # before moving on, sees a wrong or missing keypoint in this frame
    # Coins the default does not flip (rate 1 or 0): it always flips through all frames first,
    # never looks back at the previous frame (its keypoints are drawn faintly on this one), and
    # presses DONE as soon as ``ALL 6T/6T`` shows, without stepping back through the frames.
    survey_rate: float = 1.0  # flips through all frames before starting
    inspect_rate: float = 0.0  # per frame: looks back at the previous frame before labelling
    review_rate: float = 0.0  # steps back through every frame to check before DONE

    MISTAKE_FIELDS: ClassVar[tuple[str, ...]] = Persona.MISTAKE_FIELDS + ("swap_rate",
                                                                          "wrong_tab_rate")
    NOTICE_FIELDS: ClassVar[tuple[str, ...]] = Persona.NOTICE_FIELDS + ("swap_notice_now",
                                                                        "frame_check")


@dataclass(frozen=True)
class Pose:
    cx: float
    cy: float
    theta: float  # heading, radians (screen coordinates, v down)
    bend: float  # spine curvature (>0 bends to the animal's right)
    gait: float  # gait phase of the FL/HR diagonal, radians
    tail_phase: float


class AnimalLimbTracking(Task):
    """Label six pose keypoints (NOSE, TAIL, FL, FR, HL, HR) of a walking animal in every frame.

    ## Description
    A top-down video of a mouse-like animal walking across a textured floor (bedding, or an
    open-field arena with a grid), 6-10 labelled frames. The animal has a pointed head with ears,
    a trunk, a long tail and four legs moving in a trotting gait cycle (diagonal pairs in phase).
    The annotator must place six keypoints in every frame: the nose tip (NOSE), the tail base
    (TAIL) and the four paws (FL, FR, HL, HR: front/hind, the animal's own left/right, read from
    its heading). As in pose-labelling tools, one tab per keypoint selects which keypoint the next
    canvas click places.

    ## Action Space
    A left click at a screen pixel. Buttons: ``NOSE``, ``TAIL``, ``FL``, ``FR``, ``HL``, ``HR``
    (select: the keypoint tab), ``PREV``, ``NEXT`` (navigate: frame), ``UNDO``, ``DONE``. A canvas
    click places the selected keypoint in the current frame at the clicked point, replacing that
    keypoint if it was already placed there (undoable).

    ## Observation Space
    The rendered screen: the current frame with its placed keypoints as markers in a colour and
    shape per keypoint (NOSE red x, TAIL yellow x, FL cyan +, FR orange square, HL green +,
    HR magenta square), the previous frame's keypoints drawn faintly, the selected tab
    highlighted, and the status lines ``FRAME <f>/<T>  KEY <tab>  ALL <n>/<6T>`` and
    ``IN FRAME <k>/6: <placed keypoints, - where missing>``.

    ## Rewards
    Zero until the episode ends, then PCK: the fraction of all frames x keypoints placed within
    3 data pixels of the ground truth (missing keypoints count as wrong).

    ## Episode End
    DONE terminates; the env's step cap truncates. Success: PCK >= 0.9.

    ## Arguments
    See :class:`Params`: number of frames, body length, walking speed, turn rate, gait phase step,
    stride, floor texture, margin; or ``instance``, imported labelled frames of a real animal
    (``annobc import pose``, e.g. a DeepLabCut labeled-data folder): its frames are shown instead
    and its labels, mapped onto the six keypoints, are the ground truth.

    ## Version History
    - v0: initial version.
    - v1: the annotator is a policy of the state (it finishes any episode: wrong keypoints are
      placed again, missing ones labelled frame by frame); steps name their target on the view.
    - v2: the default annotator decides on what the screen shows: it always flips through all
      frames first, never looks back at the previous frame on a coin, and presses DONE as soon as
      ``ALL 6T/6T`` shows (no review coin); one correction rule for demonstrations and labels:
      UNDO while the latest annotation is a wrong keypoint drawn on this frame and UNDO puts back
      nothing wrong, else go to the wrong keypoint and place it again.
      The DONE button is drawn lit while the status shows ``ALL 6T/6T`` (``complete()``).
    """

    task_id = "animal_limb_tracking"
    version = 2
    instruction = ("In every frame select each keypoint tab (nose, tail base, front/hind left/right "
                   "paw) and click it on the animal.")
    Params = Params
    # Frames back to the nearest wrong keypoint (at most all but one), its tab, the click.
    correction_length = Params.n_frames[1] + 1
    buttons = tuple(Button(k, "select") for k in KEYPOINTS) + (
        Button("PREV", "navigate"), Button("NEXT", "navigate"),
        Button("UNDO", "undo"), Button("DONE", "done"))
    _images: np.ndarray | None = None  # (T, size, size, 3) uint8 frames of an imported instance
    personas = {
        "default": LimbPersona(),
        # Efficient: no survey, reverses the order each frame so the tab carries over.
        "zigzag": LimbPersona(zigzag=True, survey_rate=0.0, inspect_rate=0.05, review_rate=0.0,
                              swap_rate=0.07, wrong_tab_rate=0.035, notice_rate=0.88),
        # Careful: paws first, always surveys and reviews, fewer mistakes.
        "legs_first": LimbPersona(order="legs_first", survey_rate=1.0, inspect_rate=0.4,
                                  review_rate=1.0, swap_rate=0.04, wrong_tab_rate=0.02,
                                  notice_rate=0.95),
    }

    # -- scene ---------------------------------------------------------------------------------
    def setup(self, rng: np.random.Generator) -> None:
        p = self.params
        if p.instance:
            self._setup_instance(load_instance(p.instance, self.seed, self.task_id))
            return
        s = p.size
        T = self.n_frames = int(rng.integers(p.n_frames[0], p.n_frames[1] + 1))
        self.body_len = float(rng.uniform(*p.body_length))
        speed = float(rng.uniform(*p.speed))
        omega = float(rng.uniform(-p.turn_rate, p.turn_rate))
        theta0 = float(rng.uniform(0, 2 * np.pi))
        gait0 = float(rng.uniform(0, 2 * np.pi))
        dgait = float(rng.uniform(*p.gait_step))
        self.stride_f, self.stride_h = (float(rng.uniform(*p.stride)) for _ in range(2))
        jitter = rng.uniform(-1.0, 1.0, (T, 3))
        tail0 = float(rng.uniform(0, 2 * np.pi))
        floor = int(rng.integers(len(FLOORS)))
        coat = str(rng.choice(FLOORS[floor][3]))
        self._floor_kind, self.coat = floor, coat
        self._noise_offset = rng.integers(0, NOISE_BANK - s, 2)
        self._fur_offset = rng.integers(0, NOISE_BANK - 64, 2)
        shift_u, shift_v = rng.uniform(0, 1, 2)

        # Walk: heading drifts by omega per frame (with a little jitter), the body moves along it.
        thetas = theta0 + omega * np.arange(T) + 0.03 * np.cumsum(jitter[:, 0])
        omegas = np.diff(thetas, prepend=thetas[0] - omega)
        steps = speed * (1.0 + 0.12 * jitter[:, 1])
        mid = thetas - 0.5 * omegas
        du, dv = steps * np.cos(mid), steps * np.sin(mid)
        du[0] = dv[0] = 0.0
        path_u, path_v = np.cumsum(du), np.cumsum(dv)
        gaits = gait0 + dgait * np.arange(T)
        tails = tail0 + (1.6 + 0.4 * jitter[:, 2]) * np.arange(T)
        scale = 1.0
        lo_room, hi_room = p.margin, s - 1 - p.margin
        while True:  # shrink the path until every keypoint of every frame fits the canvas
            poses = [Pose(float(scale * path_u[t]), float(scale * path_v[t]), float(thetas[t]),
                          float(BEND_GAIN * omegas[t]), float(gaits[t]), float(tails[t]))
                     for t in range(T)]
            kps = np.array([self._keypoints(ps) for ps in poses])  # (T, 6, 2)
            lo, hi = kps.reshape(-1, 2).min(0), kps.reshape(-1, 2).max(0)
            if np.all(hi - lo <= hi_room - lo_room) or scale < 0.05:
                break
            scale *= 0.8
        ou = lo_room - lo[0] + shift_u * max(0.0, (hi_room - lo_room) - (hi[0] - lo[0]))
        ov = lo_room - lo[1] + shift_v * max(0.0, (hi_room - lo_room) - (hi[1] - lo[1]))
        self.poses = [Pose(ps.cx + ou, ps.cy + ov, ps.theta, ps.bend, ps.gait, ps.tail_phase)
                      for ps in poses]
        self.gt = kps + np.array([ou, ov])  # (T, 6, 2) ground-truth keypoints (u, v)
        self._gt_list = self.gt.tolist()
        self._marker_cache: dict = {}
        self._row_cache: dict = {}  # (frame, id(row)) -> (row, (placed, right, wrong))
        self._floor_img: np.ndarray | None = None
        # GUI state
        self.frame = 0
        self.sel = NOSE
        # Annotations: per frame a tuple of six entries, None or (u, v).
        self.ann: tuple[tuple, ...] = ((None,) * N_KP,) * T

    def _setup_instance(self, data: dict) -> None:
        """The video of an imported instance: its labelled frames (real image data, cropped
        around the animal onto the task's grid) and their six keypoints (``gt``, (T, 6, 2) in
        data coordinates), mapped from the labelled body parts."""
        images = data["images"]
        T, h, w, _ = images.shape
        if (h, w) != (self.params.size, self.params.size):
            raise ValueError(f"instance {data['name']} is on a {h}x{w} grid; set "
                             f"{self.task_id}.size={h}")
        self.n_frames = T
        self._images = images
        self.gt = np.asarray(data["gt"], np.float64)
        self._gt_list = self.gt.tolist()
        self._marker_cache = {}
        self._row_cache = {}
        self._floor_img = None
        self.frame = 0
        self.sel = NOSE
        self.ann = ((None,) * N_KP,) * T

    # Body geometry --------------------------------------------------------------------------
    def _paw_ab(self, pose: Pose) -> list[tuple[float, float]]:
        """Straight body coordinates (a, b) of FL, FR, HL, HR in body lengths (trotting gait)."""
        g = pose.gait
        sf, sh = self.stride_f, self.stride_h
        return [(FRONT_A + sf * math.sin(g), FRONT_B + 0.012 * math.cos(g)),
                (FRONT_A + sf * math.sin(g + math.pi), -FRONT_B - 0.012 * math.cos(g + math.pi)),
                (HIND_A + sh * math.sin(g + math.pi), HIND_B + 0.012 * math.cos(g + math.pi)),
                (HIND_A + sh * math.sin(g), -HIND_B - 0.012 * math.cos(g))]

    def _to_world(self, pose: Pose, a: float, b: float) -> tuple[float, float]:
        """Straight body coordinates (body lengths) -> data coordinates (u, v)."""
        bl = self.body_len
        a, b = a * bl, b * bl - pose.bend * a * a / bl
        c, s = math.cos(pose.theta), math.sin(pose.theta)
        # forward (c, s); the animal's left (s, -c), seen from above
        return (pose.cx + a * c + b * s, pose.cy + a * s - b * c)

    def _keypoints(self, pose: Pose) -> list[tuple[float, float]]:
        pts = [(NOSE_A, 0.0), (TAILBASE_A, 0.0)] + self._paw_ab(pose)
        return [self._to_world(pose, a, b) for a, b in pts]

    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.params.size, self.params.size)

    # -- GUI state machine ----------------------------------------------------------------------
    def press_button(self, label: str) -> Effect:
        if label == "NEXT":
            self.frame = min(self.frame + 1, self.n_frames - 1)
        elif label == "PREV":
            self.frame = max(self.frame - 1, 0)
        else:
            self.sel = KEYPOINTS.index(label)
        return NO_EFFECT

    def click_canvas(self, u: float, v: float) -> Effect:
        self.checkpoint()
        f, k = self.frame, self.sel
        row = list(self.ann[f])
        row[k] = (float(u), float(v))
        self.ann = self.ann[:f] + (tuple(row),) + self.ann[f + 1:]
        gu, gv = self._gt_list[f][k]
        return Effect(annotated=True, wrong=(u - gu) ** 2 + (v - gv) ** 2 > PCK_PX * PCK_PX)

    # -- rendering ------------------------------------------------------------------------------
    def view_key(self):
        return self.frame

    def canvas_key(self):
        return (self.frame, self.ann)  # not the selected keypoint: it shows on its tab only

    def render_view(self, key: int) -> np.ndarray:
        return self._render_frame(key)

    def _floor(self) -> np.ndarray:
        if self._floor_img is None:
            s, p = self.params.size, self.params
            color, amp, grid, _ = FLOORS[self._floor_kind]
            oy, ox = self._noise_offset
            n = noise_bank()[oy:oy + s, ox:ox + s] * (amp * p.texture)
            if grid:
                # Open-field arena floor: grid lines every 28 px, at a per-episode offset.
                g = np.zeros((s, s), np.float32)
                g[(np.arange(s) + oy) % 28 == 0, :] = grid
                g[:, (np.arange(s) + ox) % 28 == 0] = grid
                n = n + g
            img = np.asarray(color, np.float32)[None, None, :] + n[:, :, None]
            self._floor_img = np.clip(img, 0, 255).astype(np.uint8)
        return self._floor_img

    def _render_frame(self, f: int) -> np.ndarray:
        if self._images is not None:  # an imported instance: its own frame
            return np.array(self._images[f])
        pose, bl, s = self.poses[f], self.body_len, self.params.size
        img = self._floor().copy()
        coat, ear_c, tail_c, paw_c = COAT_ARRAYS[self.coat]
        to_world = self._to_world
        # Window around the animal (tail tip included), clipped to the canvas.
        tail_pts = [to_world(pose, TAIL_START - TAIL_LEN * q, 0.0) for q in (0.0, 0.5, 1.0)]
        pts = np.array(self._keypoints(pose) + tail_pts)
        x0, y0 = np.maximum(np.floor(pts.min(0) - 0.12 * bl), 0).astype(int)
        x1, y1 = np.minimum(np.ceil(pts.max(0) + 0.12 * bl) + 1, s).astype(int)
        if x1 <= x0 or y1 <= y0:
            return img
        uu = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(pose.cx)
        vv = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(pose.cy)
        c, sn = math.cos(pose.theta), math.sin(pose.theta)
        a_px = uu * np.float32(c) + vv * np.float32(sn)  # pixels along the spine
        A = a_px / np.float32(bl)  # body lengths forward
        B = (uu * np.float32(sn) - vv * np.float32(c)
             + np.float32(pose.bend / bl) * a_px * a_px) / np.float32(bl)  # body lengths left
        # The window is drawn channel by channel, (3, h, w): a per-pixel weight or a colour then
        # broadcasts over the leading axis, which numpy does several times faster than over a last
        # axis 3 long. Every value is computed as on an (h, w, 3) window, by the same operations.
        win = img[y0:y1, x0:x1].transpose(2, 0, 1).astype(np.float32, order="C")
        hw, ww = win.shape[1:]

        def box(points, pad):
            """Slices of the window covering world points (body coordinates) plus pad pixels."""
            q = [to_world(pose, pa, pb) for pa, pb in points]
            qu, qv = [z[0] for z in q], [z[1] for z in q]
            bx0 = max(math.floor(min(qu) - pad) - x0, 0)
            by0 = max(math.floor(min(qv) - pad) - y0, 0)
            bx1 = min(math.ceil(max(qu) + pad) + 1 - x0, ww)
            by1 = min(math.ceil(max(qv) + pad) + 1 - y0, hw)
            if bx1 <= bx0 or by1 <= by0:
                return None
            return slice(None), slice(by0, by1), slice(bx0, bx1)

        def blend(sub, alpha, color):
            w = win[sub]
            w += alpha * (color - w)

        def stamp(u, v, r, color, strength=1.0):
            """A soft disc of radius r pixels at data point (u, v), from the stamp cache."""
            x, y = u - x0, v - y0
            ix, iy = math.floor(x + 0.5), math.floor(y + 0.5)
            al = disc_alpha(round((x - ix) * 8), round((y - iy) * 8), round(r * 8))
            n = al.shape[0]
            sy, sx = iy - n // 2, ix - n // 2
            cy0, cx0 = max(0, -sy), max(0, -sx)
            cy1, cx1 = n - max(0, sy + n - hw), n - max(0, sx + n - ww)
            if cy1 <= cy0 or cx1 <= cx0:
                return
            w = win[:, sy + cy0:sy + cy1, sx + cx0:sx + cx1]
            al = al[cy0:cy1, cx0:cx1, 0]
            w += (al * strength if strength != 1.0 else al) * (color[:, None, None] - w)

        def ellipse(sub, ac, ea, eb, taper, front_only=False, da=0.0, db=0.0):
            x = (A[sub[1:]] - (ac + da)) / ea
            t = np.maximum(x, 0.0) if front_only else x
            w = eb * np.maximum(1.0 - taper * t, 0.2)
            e = np.sqrt(x * x + ((B[sub[1:]] - db) / w) ** 2)
            return e, (e - 1.0) * (np.minimum(w, ea) * bl)  # normalised radius, ~edge distance px

        body_box = [(NOSE_A, 0.0), (TRUNK_C - TRUNK_A, 0.0), (0.0, 0.2), (0.0, -0.2),
                    (TRUNK_C - 0.3, 0.2), (TRUNK_C - 0.3, -0.2)]
        # Soft shadow under the body, offset down-right.
        sub = box(body_box, 4.0)
        if sub is not None:
            da, db = 1.5 * (c + sn) / bl, 1.5 * (sn - c) / bl
            _, d = ellipse(sub, TRUNK_C, TRUNK_A, TRUNK_B * 1.1, TRUNK_TAPER, da=da, db=db)
            win[sub] *= 1.0 - 0.28 * unit(0.5 - d / 3.0)
        # Tail: a tapering wave behind the tail base.
        sub = box([(TAIL_START - TAIL_LEN * q, sg * TAIL_AMP) for q in (0.0, 0.5, 1.0)
                   for sg in (1.0, -1.0)], 2.0)
        if sub is not None:
            st = (TAIL_START - A[sub[1:]]) / TAIL_LEN
            stc = unit(st.copy())
            ph = (2 * math.pi * 1.1) * stc + pose.tail_phase
            ramp = np.minimum(stc / 0.3, 1.0)
            bt = TAIL_AMP * np.sin(ph) * ramp
            slope = (TAIL_AMP * 2 * math.pi * 1.1 / TAIL_LEN) * np.cos(ph) * ramp
            dist = np.abs(B[sub[1:]] - bt) * bl / np.sqrt(1.0 + slope * slope)
            r = (TAIL_R0 + (TAIL_R1 - TAIL_R0) * stc) * bl
            alpha = unit(r + 0.5 - dist) * unit((1.0 - st) * 20.0)
            alpha *= st >= -0.05
            blend(sub, alpha, tail_c[:, None, None] * (0.9 + 0.1 * np.cos(ph)))
        # Legs (their upper parts hidden under the body) and paws.
        paws = self._paw_ab(pose)
        joints = [(SHOULDER_A, SHOULDER_B), (SHOULDER_A, -SHOULDER_B), (HIP_A, HIP_B),
                  (HIP_A, -HIP_B)]
        leg_c = coat * 0.85 + 0.15 * paw_c
        for (ja, jb), (pa, pb) in zip(joints, paws):
            # Only the lower leg shows beside the body: a few overlapping soft discs.
            for q in (0.45, 0.6, 0.75):
                stamp(*to_world(pose, ja + q * (pa - ja), jb + q * (pb - jb)), LEG_R * bl, leg_c)
            stamp(*to_world(pose, pa, pb), PAW_R * bl, paw_c)
        # Trunk and head with fur texture and rounded shading.
        sub = box(body_box, 1.5)
        if sub is not None:
            e1, d1 = ellipse(sub, TRUNK_C, TRUNK_A, TRUNK_B, TRUNK_TAPER)
            e2, d2 = ellipse(sub, HEAD_C, HEAD_A, HEAD_B, HEAD_TAPER, front_only=True)
            alpha = unit(0.5 - np.minimum(d1, d2))
            e = np.minimum(np.minimum(e1, e2), 1.0)
            e = 1.0 - e * e
            fo = self._fur_offset
            fur = noise_bank()[((A[sub[1:]] * bl).astype(np.int32) + fo[0]) % NOISE_BANK,
                               ((B[sub[1:]] * (2 * bl)).astype(np.int32) + fo[1]) % NOISE_BANK]
            shade = 0.78 + 0.3 * e + (0.06 * self.params.texture) * fur
            body = coat[:, None, None] * shade + 14.0 * e
            w = win[sub]
            w += alpha * (body - w)
        # Ears, eyes, nose tip.
        for sign in (1.0, -1.0):
            stamp(*to_world(pose, EAR_A, sign * EAR_B), EAR_R * bl, ear_c)
            stamp(*to_world(pose, EYE_A, sign * EYE_B), EYE_R * bl, EYE_COLOR, 0.8)
        stamp(*to_world(pose, NOSE_A - 0.012, 0.0), 0.9, paw_c)
        out = np.clip(win, 0, 255, out=win).astype(np.uint8)
        for ch in range(3):
            img[y0:y1, x0:x1, ch] = out[ch]
        return img

    def draw_overlays(self, canvas: np.ndarray, mapper) -> None:
        ys, xs, cols = self.memo(("overlay", self.frame, mapper, canvas.shape), lambda: self._overlay_pixels(canvas, mapper))
        canvas[ys, xs] = cols

    def _overlay_pixels(self, canvas: np.ndarray, mapper):
        """Pixels and colours of this frame's markers (computed once per annotation state).

        The previous frame's keypoints are blended faintly into the base image, this frame's are
        drawn on top; each marker's pixels are cached, as placed points rarely change.
        """
        r = max(2, round(2 * mapper.pixel_size))
        f = self.frame
        parts = []
        marks = []
        if f > 0:
            marks += [(k, pt, True) for k, pt in enumerate(self.ann[f - 1]) if pt is not None]
        marks += [(k, pt, False) for k, pt in enumerate(self.ann[f]) if pt is not None]
        for k, pt, faint in marks:
            mkey = (f, k, pt, faint, mapper)
            part = self._marker_cache.get(mkey)
            if part is None:
                part = self._marker_cache[mkey] = self._marker_pixels(canvas, mapper, k, pt, faint, r)
            parts.append(part)
        if not parts:
            return _EMPTY_OVERLAY
        if len(parts) == 1:
            return parts[0]
        return tuple(np.concatenate(z) for z in zip(*parts))

    @staticmethod
    def _marker_pixels(canvas, mapper, k, pt, faint, r):
        dy, dx = mark_offsets(KP_SHAPES[k], r)
        x, y = mapper.to_canvas_px(*pt)
        h, w = canvas.shape[:2]
        ys, xs = dy + y, dx + x
        keep = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        ys, xs = ys[keep], xs[keep]
        if faint:
            cols = blend_pixels(canvas[ys, xs], KP_COLORS[k], FAINT_ALPHA)
        else:
            cols = np.broadcast_to(np.asarray(KP_COLORS[k], np.float32).astype(np.uint8), (len(ys), 3))
        return ys, xs, cols

    def status(self) -> tuple[str, ...]:
        # The parts kept while the keypoints stand: the total, and the frame's line (a click on a
        # keypoint tab changes only the first line's KEY).
        total = self._total()
        return (f"FRAME {self.frame + 1}/{self.n_frames}  KEY {KEYPOINTS[self.sel]}  "
                f"ALL {total}/{N_KP * self.n_frames}",
                self.memo(("status2", self.frame), self._frame_line))

    def _frame_line(self) -> str:
        row = self.ann[self.frame]
        placed = sum(pt is not None for pt in row)
        names = " ".join(k if pt is not None else "-" for k, pt in zip(KEYPOINTS, row))
        return f"IN FRAME {placed}/{N_KP}: {names}"

    def selected(self) -> tuple[str, ...]:
        return (KEYPOINTS[self.sel],)

    def complete(self) -> bool:  # ALL 6T/6T
        return self._total() == N_KP * self.n_frames

    def _total(self) -> int:
        return self.memo("total", lambda: sum(self._row_counts(f, r)[0]
                                              for f, r in enumerate(self.ann)))

    def undo_change(self) -> tuple[int, int, tuple | None] | None:
        """What UNDO would change: (frame, keypoint, the point it puts back, None for none), or
        None where it would change nothing. Every canvas click changes one keypoint."""
        if not self._undo_stack:
            return None
        before = self._undo_stack[-1]
        for f, (a, b) in enumerate(zip(before, self.ann)):
            if a is not b and a != b:
                k = next((k for k in range(N_KP) if a[k] != b[k]), None)
                if k is not None:
                    return f, k, a[k]
        return None

    # -- latents and score ----------------------------------------------------------------------
    def position(self) -> float:
        return self.frame / (self.n_frames - 1)

    def target_point(self, k: int) -> tuple[float, float] | None:
        """Item k = frame * 6 + keypoint, on the view only in its own frame."""
        f, kp = divmod(k, N_KP)
        if k < 0 or f != self.frame:
            return None
        u, v = self._gt_list[f][kp]
        return u, v

    def target_offset(self, k: int) -> int | None:
        return None if k < 0 else self.frame - k // N_KP

    def keypoint_ok(self, f: int, k: int) -> bool | None:
        """None if keypoint k of frame f is missing, else whether it is within PCK_PX."""
        pt = self.ann[f][k]
        if pt is None:
            return None
        gu, gv = self._gt_list[f][k]
        return (pt[0] - gu) ** 2 + (pt[1] - gv) ** 2 <= PCK_PX * PCK_PX

    def _counts(self) -> tuple[int, int]:
        return self.memo("counts", self._compute_counts)

    def _compute_counts(self) -> tuple[int, int]:
        right = wrong = 0
        for f, row in enumerate(self.ann):
            _, r, w = self._row_counts(f, row)
            right += r
            wrong += w
        return right, wrong

    def _row_counts(self, f: int, row: tuple) -> tuple[int, int, int]:
        """(placed, right, wrong) of frame f's keypoints ``row``; kept per row object, as a click
        replaces one row and the others stay the very same tuples (the cache holds each row,
        so that its id is not reused while it is there)."""
        got = self._row_cache.get((f, id(row)))
        if got is None or got[0] is not row:
            placed = right = 0
            thr = PCK_PX * PCK_PX
            for pt, (gu, gv) in zip(row, self._gt_list[f]):
                if pt is not None:
                    placed += 1
                    right += (pt[0] - gu) ** 2 + (pt[1] - gv) ** 2 <= thr
            got = self._row_cache[(f, id(row))] = (row, (placed, right, placed - right))
        return got[1]

    def n_wrong(self) -> int:
        return self._counts()[1]

    def score(self) -> tuple[float, bool]:
        pck = self._counts()[0] / (N_KP * self.n_frames)
        return pck, pck >= SUCCESS_PCK


@dataclass(frozen=True)
class _Slip:
    """A wrong placement the annotator has just clicked, until it sees whether the click landed."""

    kind: str  # "wrong_tab", "swap" (a pair's first paw on the other paw), "swap_partner"
    frame: int
    keypoint: int  # the keypoint the click places: the selected tab's
    aim: int  # the keypoint the annotator meant to place
    before: tuple  # the annotations before the click


@dataclass
class _Tour:
    """Frames to visit in turn without annotating: a survey, a look back, a review."""

    phase: str
    waypoints: list[int]
    look: str | None  # the occasion under which each frame on the way is looked over; None: not
    target: int = -1


class LimbAnnotator(Annotator, task=AnimalLimbTracking):
    """Frame by frame: each missing keypoint in the persona's order (its tab, then its click), a
    look over the frame, NEXT. Wrong keypoints it knows of are taken back first: UNDO where the
    latest annotation is one of them, drawn on this frame, and UNDO puts back nothing wrong; else
    it goes to the nearest and places it again. It knows of all but the ones it slipped on and
    has not noticed yet (demonstrations and labels share the rule)."""

    persona: LimbPersona
    task: AnimalLimbTracking

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._started = False
        self._tour: _Tour | None = None
        self._inspected: set[int] = set()  # frames it has decided whether to look back from
        self._reviewed = False  # it has decided whether to review before DONE
        self._slipped: set[tuple] = set()  # slip occasions already acted on: each comes once
        self._slip: _Slip | None = None
        # Noticed slips to take back, latest first: (annotations after, before, item).
        # (frame, keypoint) -> the wrong point it slipped to and has not noticed.
        self._left: dict[tuple[int, int], tuple] = {}
        # (frame, pair) -> (first paw, annotations after, before) of a swap not noticed at once:
        # the partner paw then goes on the first paw's spot.
        self._confused: dict[tuple[int, int], tuple[int, tuple, tuple]] = {}
        self._redo: set[int] = set()  # items to place again after their slip was undone

    def next_intent(self) -> Intent:
        t, p = self.task, self.persona
        if not self._started:
            self._started = True
            fresh = t.frame == 0 and all(pt is None for row in t.ann for pt in row)
            if fresh and self.decide(("survey",), p.survey_rate):
                self._tour = _Tour("survey", [t.n_frames - 1, 0], None)
        self._see_slip()
        self._look_over()
        undo = self._undo_fix()
        if undo is not None:
            return undo
        intent = self._act()
        if intent is None and not self._reviewed:
            self._reviewed = True
            if self.decide(("review",), p.review_rate):
                self._tour = _Tour("verify", [t.n_frames - 1, 0], "review")
                self._look_over()
                intent = self._act()
        return intent if intent is not None else self.press("DONE", "finish")

    def _act(self) -> Intent | None:
        """Fix a known wrong keypoint, else go on with the tour, else label the first frame with
        a keypoint missing; None when nothing is left to do."""
        t = self.task
        wrong = self._known_wrong()
        if wrong is not None:
            return self._fix(*wrong)
        if self._tour is not None:
            step = self._tour_step()
            if step is not None:
                return step
        f = next((f for f in range(t.n_frames) if None in t.ann[f]), None)
        return None if f is None else self._label(f)

    def _order(self, f: int) -> list[int]:
        p = self.persona
        order = [FL, FR, HL, HR, NOSE, TAIL] if p.order == "legs_first" else list(range(N_KP))
        if p.zigzag and f % 2 == 1:
            order.reverse()
        return order

    def _put(self, f: int, k: int, phase: str, target: int, correction: bool = False) -> Intent:
        """A click on keypoint k's ground truth in frame f."""
        u, v = self.task.gt[f, k]
        return self.place(float(u), float(v), phase, target, correction)

    def _go(self, f: int, phase: str, target: int, correction: bool = False) -> Intent:
        return self.press("NEXT" if f > self.task.frame else "PREV", phase, target, correction)

    # -- fixing --------------------------------------------------------------------------------
    def _undo_fix(self) -> Intent | None:
        """UNDO where the latest annotation is a wrong keypoint (not one it has left) drawn on
        this frame, and UNDO puts back nothing wrong (a missing or right keypoint). Demonstrations
        and labels share it; elsewhere a wrong keypoint is gone to and placed again (:meth:`_fix`)."""
        t = self.task
        ch = t.undo_change()
        if ch is None:
            return None
        f, k, before = ch
        if f != t.frame or (f, k) in self._left or t.keypoint_ok(f, k) is not False:
            return None
        gu, gv = t._gt_list[f][k]
        if before is not None and (before[0] - gu) ** 2 + (before[1] - gv) ** 2 > PCK_PX * PCK_PX:
            return None  # UNDO would put back a wrong point: place it again instead
        return self.press("UNDO", "correct", f * N_KP + k, True)

    def _known_wrong(self) -> tuple[int, int] | None:
        """The wrong keypoint it knows of nearest to this frame (the lower frame on a tie)."""
        t = self.task
        for f in sorted(range(t.n_frames), key=lambda f: (abs(f - t.frame), f)):
            for k in self._order(f):
                if t.keypoint_ok(f, k) is False and (f, k) not in self._left:
                    return f, k
        return None

    def _fix(self, f: int, k: int) -> Intent:
        """Place keypoint k of frame f again: to its frame, its tab, its click."""
        t, item = self.task, f * N_KP + k
        if t.frame != f:
            return self._go(f, "correct", item, True)
        if t.sel != k:
            return self.press(KEYPOINTS[k], "correct", item, True)
        return self._put(f, k, "correct", item, True)

    def _look_over(self) -> None:
        """Sees, or not, the wrong keypoints it left on this frame: once the frame is complete
        (before moving on), and on a tour that looks (a look back, a review)."""
        t, f = self.task, self.task.frame
        occasions = [self._tour.look] if self._tour is not None and self._tour.look else []
        if None not in t.ann[f]:
            occasions.append("frame")
        for (lf, k), pt in list(self._left.items()):
            changed = t.ann[lf][k] != pt  # someone moved or removed it: no longer left
            if changed or (lf == f and any(
                    self.decide(("notice", occ, f, k, pt), self.persona.frame_check)
                    for occ in occasions)):
                del self._left[(lf, k)]

    # -- slips ---------------------------------------------------------------------------------
    def _see_slip(self) -> None:
        """After a slip click: notice it at once (the state rule then UNDOes it), or leave it."""
        s, self._slip = self._slip, None
        t, p = self.task, self.persona
        if s is None or t.ann is s.before or t.keypoint_ok(s.frame, s.keypoint) is not False:
            return  # the click did not land as a slip
        f, k, after = s.frame, s.keypoint, t.ann
        redo = [f * N_KP + s.aim]
        if s.kind == "wrong_tab":
            noticed = self.decide(("notice", "wrong_tab", f, s.aim), p.notice_rate)
        elif s.kind == "swap":
            noticed = self.decide(("notice", "swap_now", f, PAIR[k]), p.swap_notice_now)
            if not noticed:
                self._confused[(f, PAIR[k])] = (k, after, s.before)
        else:  # both paws of the pair now sit on the wrong sides, which is easier to see
            first, _, _ = self._confused.pop((f, PAIR[k]))
            noticed = self.decide(("notice", "swap", f, PAIR[k]), p.notice_rate)
            redo.append(f * N_KP + first)
            if noticed:
                self._left.pop((f, first), None)
        if noticed:  # the latest annotations are the slip's: _undo_fix takes them back
            self._redo.update(redo)
        else:
            self._left[(f, k)] = after[f][k]

    def _swap(self, f: int, k: int) -> str | None:
        """Whether keypoint k of frame f goes on its mirror paw: "swap" for the first paw of a
        pair taken left for right, "swap_partner" for the second after a swap not noticed."""
        if k not in MIRROR:
            return None
        t, m = self.task, MIRROR[k]
        pair = (f, PAIR[k])
        if pair in self._confused:
            first, after, _ = self._confused[pair]
            if first == m and t.ann[f][m] == after[f][m]:
                return "swap_partner"
            del self._confused[pair]  # the first paw was changed since: the confusion is over
            return None
        key = ("swap", *pair)
        fresh = t.ann[f][m] is None and key not in self._slipped
        return "swap" if fresh and self.decide(key, self.persona.swap_rate) else None

    # -- labelling -----------------------------------------------------------------------------
    def _label(self, f: int) -> Intent:
        """The next click towards the first missing keypoint of frame f, in the persona's order."""
        t, p = self.task, self.persona
        k = next(k for k in self._order(f) if t.ann[f][k] is None)
        item = f * N_KP + k
        if t.frame != f:
            return self._go(f, "navigate", item)
        if f > 0 and f not in self._inspected and all(pt is None for pt in t.ann[f]):
            # Looks back at the last frame (gait, which side each paw is on) before starting.
            self._inspected.add(f)
            if self.decide(("inspect", f), p.inspect_rate):
                self._tour = _Tour("inspect", [f - 1, f], "inspect", item)
                return self._tour_step()
        redo = item in self._redo
        swap = None if redo else self._swap(f, k)
        if t.sel != k:
            key = ("wrong_tab", f, k)
            if swap is None and not redo and key not in self._slipped and self.decide(
                    key, p.wrong_tab_rate):
                # Places it with the previous tab still selected: that keypoint moves here.
                self._slipped.add(key)
                self._slip = _Slip("wrong_tab", f, t.sel, k, t.ann)
                return self._put(f, k, "place", item)
            return self.press(KEYPOINTS[k], "correct" if redo else "select", item, redo)
        if swap is not None:
            self._slipped.add(("swap", f, PAIR[k]))
            self._slip = _Slip(swap, f, k, k, t.ann)
            return self._put(f, MIRROR[k], "place", item)
        self._redo.discard(item)
        return self._put(f, k, "correct" if redo else "place", item, redo)

    def _tour_step(self) -> Intent | None:
        """The next move of the tour; None (and the tour ends) once its last frame is reached."""
        tour, t = self._tour, self.task
        while tour.waypoints and t.frame == tour.waypoints[0]:
            tour.waypoints.pop(0)
        if not tour.waypoints:
            self._tour = None
            return None
        return self._go(tour.waypoints[0], tour.phase, tour.target)
