"""road_network_construction: trace the road network of an aerial map as a graph.

Analogue: vectorising roads, vessels or neurites as graphs (OpenStreetMap-style editors, vessel and
neurite tracers): choose a tool, then click node pairs, on a map larger than the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import ClassVar, NamedTuple

import numpy as np

from annobc.gui import draw_mark
from annobc.gui.raster import line_pixels, mark_pixels
from annobc.tasks.textures import camera_noise
from annobc.tasks.annotator import Annotator, Intent
from annobc.tasks.base import Button, Effect, NO_EFFECT, Persona, Task

MATCH_PX = 3.0  # a placed node matches a true node within this many map pixels
SNAP_PX = 4.0  # an EDGE click snaps to the nearest placed node within this many map pixels
BANK = 640  # side of the shared terrain bank that every map is cropped from
NOISE_BANK = 512
EDGE_COLOR = (0, 235, 255)
NODE_COLOR = (255, 230, 0)
PICK_COLOR = (255, 40, 40)
TOOLS = ("NODE", "EDGE")
PANS = {"UP": (0, -1), "DOWN": (0, 1), "LEFT": (-1, 0), "RIGHT": (1, 0)}
BACK = {"UP": "DOWN", "DOWN": "UP", "LEFT": "RIGHT", "RIGHT": "LEFT"}

# Field classes of the terrain: base colour (RGB), stripe amplitude, probability.
_FIELDS = (
    ((80, 112, 58), 0.03, 0.27),  # pasture
    ((106, 138, 66), 0.08, 0.20),  # green crop
    ((182, 168, 106), 0.07, 0.18),  # ripe wheat
    ((126, 100, 74), 0.12, 0.16),  # ploughed soil
    ((152, 150, 108), 0.04, 0.11),  # dry grass
    ((50, 76, 44), 0.00, 0.08),  # woodland
)


# -- shared texture banks (built once per process, from fixed seeds) --------------------------------
def _bilinear(small: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of a square (n, n) array to (size, size)."""
    n = small.shape[0]
    t = np.linspace(0.0, n - 1.0, size)
    i0 = np.minimum(t.astype(np.intp), n - 2)
    f = (t - i0).astype(np.float32)
    rows = small[i0] * (1 - f)[:, None] + small[i0 + 1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i0 + 1] * f[None, :]


@lru_cache(maxsize=1)
def terrain_bank() -> np.ndarray:
    """A large aerial-like field mosaic (fields with crop rows, hedgerows, trees), uint8 RGB.

    Every map is a crop of it (at a per-episode offset, flip and tint), so no episode pays for
    building the texture. Noise is added per episode from :func:`noise_bank`.
    """
    rng = np.random.default_rng(20260318)
    s, cell = BANK, 40
    g = s // cell + 3
    # Jittered-grid Voronoi: polygonal fields of roughly similar size.
    sy = (np.arange(g)[:, None] - 1 + rng.uniform(0.1, 0.9, (g, g))) * cell
    sx = (np.arange(g)[None, :] - 1 + rng.uniform(0.1, 0.9, (g, g))) * cell
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
    ci, cj = (ys // cell).astype(np.intp), (xs // cell).astype(np.intp)
    best = np.full((s, s), np.inf, np.float32)
    lab = np.zeros((s, s), np.intp)
    for di in range(3):
        for dj in range(3):
            a, b = ci + di, cj + dj
            d = (ys - sy[a, b]) ** 2 + (xs - sx[a, b]) ** 2
            upd = d < best
            best[upd] = d[upd]
            lab[upd] = (a * g + b)[upd]
    n = g * g
    probs = np.array([f[2] for f in _FIELDS])
    kind = rng.choice(len(_FIELDS), n, p=probs / probs.sum())
    base = np.array([f[0] for f in _FIELDS], np.float32)[kind] * rng.uniform(0.88, 1.12, (n, 1))
    amp = np.array([f[1] for f in _FIELDS], np.float32)[kind] * rng.uniform(0.5, 1.3, n)
    theta = rng.uniform(0, np.pi, n)
    period = rng.uniform(3.0, 6.5, n)
    kx, ky = (np.cos(theta) / period).astype(np.float32), (np.sin(theta) / period).astype(np.float32)
    stripes = np.sin(2 * np.pi * (xs * kx[lab] + ys * ky[lab]))
    smooth = _bilinear(rng.normal(0, 1, (s // 16 + 2, s // 16 + 2)).astype(np.float32), s)
    blotch = _bilinear(rng.normal(0, 1, (s // 5 + 2, s // 5 + 2)).astype(np.float32), s)
    wood = (kind[lab] == len(_FIELDS) - 1).astype(np.float32)
    shade = 1.0 + amp[lab] * stripes + 0.05 * smooth + wood * 0.18 * blotch
    img = base[lab] * shade[:, :, None]
    # Hedgerows along field boundaries, and tree crowns along them and in woodland.
    edge = (lab != np.roll(lab, 1, 0)) | (lab != np.roll(lab, 1, 1))
    img[edge] = img[edge] * 0.45 + np.array([52, 74, 42], np.float32) * 0.55
    by, bx = np.nonzero(edge)
    pick = rng.choice(len(by), 900, replace=False)
    centres = np.concatenate([np.stack([by[pick], bx[pick]], 1),
                              rng.integers(0, s, (500, 2))])
    for (cy, cx), r in zip(centres, rng.uniform(0.8, 2.2, len(centres))):
        ri = int(math.ceil(r)) + 1
        y0, y1, x0, x1 = max(cy - ri, 0), min(cy + ri + 2, s), max(cx - ri, 0), min(cx + ri + 2, s)
        if y1 <= y0 or x1 <= x0:
            continue
        yy, xx = np.ogrid[y0:y1, x0:x1]
        shadow = (yy - cy - 1) ** 2 + (xx - cx - 1) ** 2 <= r * r
        img[y0:y1, x0:x1][shadow] *= 0.6
        crown = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        img[y0:y1, x0:x1][crown] = np.array([44, 70, 38], np.float32) * rng.uniform(0.8, 1.2)
    return np.clip(img, 0, 255).astype(np.uint8)


def noise_bank() -> np.ndarray:
    """Unit-variance sensor noise, slightly correlated (2x2 mean), per colour channel."""
    return camera_noise(NOISE_BANK, 20260319, 3)


def _disc_offsets(r: float) -> np.ndarray:
    k = np.arange(-int(math.ceil(r)), int(math.ceil(r)) + 1)
    dy, dx = np.meshgrid(k, k, indexing="ij")
    m = dy * dy + dx * dx <= r * r
    return np.stack([dy[m], dx[m]], 1)


def _distance_map(pts: np.ndarray, h: int, w: int, reach: float) -> np.ndarray:
    """Distance from every pixel to the nearest of ``pts`` (x, y), exact within ``reach``."""
    dist = np.full(h * w, np.float32(reach + 1.0), np.float32)
    if len(pts) == 0:
        return dist.reshape(h, w)
    off = _disc_offsets(reach + 1.0)
    base = np.floor(pts + 0.5).astype(np.intp)  # (n, 2) as (x, y)
    cx = base[:, None, 0] + off[None, :, 1]
    cy = base[:, None, 1] + off[None, :, 0]
    d = np.hypot(cx - pts[:, None, 0], cy - pts[:, None, 1]).astype(np.float32)
    keep = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
    np.minimum.at(dist, (cy[keep] * w + cx[keep]), d[keep])
    return dist.reshape(h, w)


def _min_dist(p: np.ndarray, q: np.ndarray) -> float:
    """Smallest distance between a point of p (n, 2) and a point of q (m, 2)."""
    d2 = (p[:, None, 0] - q[None, :, 0]) ** 2 + (p[:, None, 1] - q[None, :, 1]) ** 2
    return float(np.sqrt(d2.min()))


def _bezier(a: np.ndarray, b: np.ndarray, bulge: float, step: float = 0.8) -> np.ndarray:
    """Points (x, y) every ~``step`` px along a quadratic Bezier from a to b; ``bulge`` is the
    sideways offset of the curve's midpoint (0: straight)."""
    d = b - a
    length = float(np.hypot(*d))
    normal = np.array([-d[1], d[0]]) / max(length, 1e-9)
    c = (a + b) / 2 + 2 * bulge * normal
    n = max(2, int(math.ceil(length * (1 + 2.5 * abs(bulge) / max(length, 1)) / step)) + 1)
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * a + 2 * (1 - t) * t * c + t ** 2 * b


# -- parameters, personas, state ------------------------------------------------------------------
@dataclass(frozen=True)
class Params:
    view: int = 112  # side of the visible window (the canvas data grid), map pixels
    pan_step: int = 28  # map pixels the view moves per pan click
    map_scale: tuple[float, float] = (1.5, 2.0)  # map side / view side, per direction
    # Junctions and road ends. At least 8 (v2): with DONE on the complete counts, 5-7 junctions on
    # the smallest maps made episodes of under 50 clicks (the task contract's floor).
    n_nodes: tuple[int, int] = (8, 12)
    road_width: tuple[float, float] = (2.0, 3.0)  # pixels
    curved_fraction: tuple[float, float] = (0.25, 0.6)  # share of roads drawn as curves
    min_separation: float = 22.0  # minimum distance between nodes, pixels
    n_houses: tuple[int, int] = (4, 10)  # farm buildings beside the roads (distractors)
    river_prob: float = 0.35  # probability of a river crossing the map (a distractor)
    noise: float = 4.0  # sensor noise, grey levels (standard deviation)


@dataclass(frozen=True)
class RoadPersona(Persona):
    notice_rate: float = 0.985
    order: str = "region"  # "region": nodes then edges in each region; "two_pass": all nodes, then all edges
    survey: bool = True  # pans over the whole map before starting
    verify: bool = True  # pans over the whole map again at the end, looking for missed nodes
    # DONE as soon as the status line reads every node and every road (``NODES N/N  EDGES M/M``)
    # and nothing drawn looks wrong, wherever the passes have got: the verify pass is then walked
    # only while the counts are short (or over). False: every pass is walked to its end first.
    done_on_counts: bool = True
    region_stride: int = 1  # pan clicks between two work regions (and survey / verify stops)
    miss_rate: float = 0.08  # overlooks a node in its region (found later)
    shortcut_rate: float = 0.5  # ... and then joins its neighbours past it (a wrong edge)
    wrong_edge_rate: float = 0.11  # joins a node to the wrong neighbour
    late_notice_rate: float = 0.0  # ... and notices only after joining the next road
    offnode_rate: float = 0.045  # places a node 4-6 px off the junction, on the road
    peek_rate: float = 0.0  # pans towards a node near the window's border before placing it
    check_rate: float = 0.0  # after a region, pans one step away and back to check it
    x_first_rate: float = 1.0  # panning along both axes: x first (else y first)

    # notice_rate also rules finding an overlooked node; late_notice_rate only delays noticing.
    MISTAKE_FIELDS: ClassVar[tuple[str, ...]] = Persona.MISTAKE_FIELDS + (
        "miss_rate", "shortcut_rate", "wrong_edge_rate", "offnode_rate")


class Graph(NamedTuple):
    """The annotation state: placed nodes (map x, y) and edges (i, j), i < j, between them."""

    nodes: tuple[tuple[float, float], ...] = ()
    edges: tuple[tuple[int, int], ...] = ()


class RoadNetworkConstruction(Task):
    """Trace the road network of an aerial map as a graph of nodes and edges.

    ## Description
    An aerial-like map (fields with crop rows, hedgerows, trees, farm buildings, sometimes a river)
    1.5-2x the window in each direction carries a planar road network: 8-12 nodes (junctions and
    road ends, each a small paved patch) joined by 2-3 px roads, some curved. The canvas is a
    112x112 window onto the map, moved with four pan buttons. The annotator must place a node on
    every junction and road end and join every pair of nodes that a road connects.

    ## Action Space
    A left click at a screen pixel. Buttons: ``UP``, ``DOWN``, ``LEFT``, ``RIGHT`` (navigate: move
    the window by 28 map pixels, clamped at the map's border), ``NODE`` and ``EDGE`` (select: the
    tool), ``UNDO``, ``DONE``. With NODE, a canvas click places a node there. With EDGE, a click
    picks the placed node nearest to it (within 4 px); a click on a second node joins the two with
    an edge; the pick survives panning, so long roads can be joined across views. A click on the
    picked node or away from every node drops the pick; UNDO and a tool change drop it too.

    ## Observation Space
    The rendered screen: the window onto the map with every placed node (yellow square) and edge
    (cyan line) drawn where it falls, the picked node circled in red; the active tool highlighted;
    status lines ``<TOOL> TOOL  VIEW X<x>/<max> Y<y>/<max>`` and
    ``NODES <n>/<N>  EDGES <m>/<M>`` (N, M: the junctions and roads of the map, as an editor shows
    progress against a known road list; + ``FIRST <x>,<y>`` or ``FIRST -`` with the EDGE tool).

    ## Rewards
    Zero until the episode ends, then the score: the mean of node F1 (a placed node matches a true
    node within 3 px, one-to-one) and edge F1 (a placed edge is right when its two nodes match the
    two ends of a true road).

    ## Episode End
    DONE terminates; the env's step cap truncates. Success: node F1 >= 0.9 and edge F1 >= 0.9.

    ## Arguments
    See :class:`Params`: window size, pan step, map size relative to the window, number of nodes,
    road width, share of curved roads, node separation, houses, river, noise.

    ## Version History
    - v0: initial version.
    - v1: the annotator is a policy of the state (it finishes any state: takes back what looks
      wrong, then works the map); its decisions are keyed by occasion, so the demonstrations
      changed. Steps record where their target is (``target_point``).
    - v2: the status shows the totals, ``NODES <n>/<N>  EDGES <m>/<M>``. The default annotator
      decides on what the screen shows: DONE as soon as the counts are complete (no verify pass
      before it; that pass is walked only while the counts are short or over, and ends at X0 Y0),
      always x first when panning, no peeks near the border nor checks after a region, a wrong
      edge noticed at once (no late notice), and UNDO only where what it takes back is drawn.
      Scenes have 8-12 nodes (was 5-12), so that episodes keep at least 50 clicks without the
      verify pass.
      The DONE button is drawn lit while the status shows ``NODES N/N  EDGES M/M``
      (``complete()``). A fix within v2 (the demonstrations are unchanged, click for click):
      the expert UNDOes a latest node on the map's own border where the window is clamped,
      instead of panning towards it for ever (a state only a foreign roll-in reaches).
    """

    task_id = "road_network_construction"
    version = 2
    instruction = ("Trace the road network: a node on every junction and road end, an edge along "
                   "every road between two nodes.")
    Params = Params
    # UNDO takes back the latest annotation: one click for a slip just made, two for a wrong edge
    # noticed only after the next road is joined.
    correction_length = 2
    buttons = (Button("UP", "navigate"), Button("DOWN", "navigate"), Button("LEFT", "navigate"),
               Button("RIGHT", "navigate"), Button("NODE", "select"), Button("EDGE", "select"),
               Button("UNDO", "undo"), Button("DONE", "done"))
    personas = {
        "default": RoadPersona(),
        "two_pass": RoadPersona(order="two_pass", survey=False, verify=True, peek_rate=0.2,
                                check_rate=0.0, region_stride=2, done_on_counts=False,
                                late_notice_rate=0.3, x_first_rate=0.5),
        "careless": RoadPersona(survey=False, verify=False, miss_rate=0.1, wrong_edge_rate=0.1,
                                offnode_rate=0.06, notice_rate=0.92, peek_rate=0.0,
                                check_rate=0.0, place_sigma=0.6),
    }

    # -- scene ---------------------------------------------------------------------------------
    def setup(self, rng: np.random.Generator) -> None:
        p = self.params
        self.view = int(p.view)
        step = int(p.pan_step)
        extra = [step * int(round((float(rng.uniform(*p.map_scale)) - 1.0) * p.view / step))
                 for _ in range(2)]
        self.map_w, self.map_h = self.view + max(extra[0], 0), self.view + max(extra[1], 0)
        self.max_x, self.max_y = self.map_w - self.view, self.map_h - self.view
        n = int(rng.integers(p.n_nodes[0], p.n_nodes[1] + 1))
        self.nodes = self._sample_nodes(rng, n)
        self.edges = self._rng_edges(self.nodes)
        self.road_width = float(rng.uniform(*p.road_width))
        self.paths = self._shape_roads(rng, float(rng.uniform(*p.curved_fraction)))
        self.edge_set = {e: k for k, e in enumerate(self.edges)}
        self.neighbours: list[list[int]] = [[] for _ in range(n)]
        for a, b in self.edges:
            self.neighbours[a].append(b)
            self.neighbours[b].append(a)
        # Everything the map image needs, drawn now so that rendering later uses no randomness.
        self._crop = (int(rng.integers(0, BANK - self.map_h + 1)), int(rng.integers(0, BANK - self.map_w + 1)),
                      int(rng.choice([-1, 1])), int(rng.choice([-1, 1])))
        self._tint = rng.uniform(0.92, 1.08, 3).astype(np.float32) * np.float32(rng.uniform(0.92, 1.06))
        self._noise_at = rng.integers(0, NOISE_BANK - max(self.map_h, self.map_w), 2)
        grey = float(rng.uniform(118, 150))
        self._road_color = np.array([grey, grey * 0.99, grey * 0.95], np.float32)
        self._river = self._river_path(rng) if rng.random() < p.river_prob else None
        self._houses = self._sample_houses(rng, int(rng.integers(p.n_houses[0], p.n_houses[1] + 1)))
        self._map: np.ndarray | None = None
        self._lines: dict = {}
        self._squares: dict = {}
        # GUI state
        self.ox, self.oy = 0, 0
        self.tool = "NODE"
        self.pick: int | None = None
        self.ann = Graph()

    def _sample_nodes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        margin, sep = 9.0, float(self.params.min_separation)
        pts: list[np.ndarray] = []
        tries = 0
        while len(pts) < n:
            c = rng.uniform((margin, margin), (self.map_w - 1 - margin, self.map_h - 1 - margin))
            if all(math.hypot(*(c - q)) >= sep for q in pts):
                pts.append(c)
            tries += 1
            if tries > 400:
                sep, tries = sep * 0.9, 0
        return np.array(pts)

    @staticmethod
    def _rng_edges(pts: np.ndarray) -> tuple[tuple[int, int], ...]:
        """The relative neighbourhood graph: planar, connected, no road passes through a node."""
        d = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
        lune = np.maximum(d[:, None, :], d[None, :, :]) < d[:, :, None]  # [i, j, k]: k in the lune
        n = len(pts)
        return tuple((i, j) for i in range(n) for j in range(i + 1, n) if not lune[i, j].any())

    def _shape_roads(self, rng: np.random.Generator, curved: float) -> list[np.ndarray]:
        """A polyline per road: straight, or a gentle curve that keeps clear of other roads/nodes."""
        paths = [_bezier(self.nodes[a], self.nodes[b], 0.0) for a, b in self.edges]
        for k, (a, b) in enumerate(self.edges):
            if rng.random() >= curved:
                continue
            length = float(np.hypot(*(self.nodes[b] - self.nodes[a])))
            bulge = float(rng.choice([-1, 1]) * rng.uniform(0.1, 0.2) * length)
            for scale in (1.0, 0.6):
                cand = _bezier(self.nodes[a], self.nodes[b], bulge * scale)
                if self._clear(cand, k, paths):
                    paths[k] = cand
                    break
        return paths

    def _clear(self, path: np.ndarray, k: int, paths: list[np.ndarray]) -> bool:
        """Whether road k along ``path`` keeps clear of other junctions and roads."""
        a, b = self.edges[k]
        pp0 = path[::4]
        others = [i for i in range(len(self.nodes)) if i not in (a, b)]
        if others and _min_dist(pp0, self.nodes[others]) < 10.0:
            return False
        for j, (c, e) in enumerate(self.edges):
            if j == k:
                continue
            pp, q = pp0, paths[j][::4]
            for s in {a, b} & {c, e}:  # ignore the stretch next to a shared junction
                pp = pp[np.hypot(*(pp - self.nodes[s]).T) > 10.0]
                q = q[np.hypot(*(q - self.nodes[s]).T) > 10.0]
            if len(pp) and len(q) and _min_dist(pp, q) < 6.0:
                return False
        return True

    def _river_path(self, rng: np.random.Generator) -> np.ndarray | None:
        """A meandering river from one side of the map to the other, clear of every node."""
        w, h = self.map_w, self.map_h
        for _ in range(4):
            if rng.random() < 0.5:
                a, b = np.array([-5.0, rng.uniform(0, h)]), np.array([w + 5.0, rng.uniform(0, h)])
            else:
                a, b = np.array([rng.uniform(0, w), -5.0]), np.array([rng.uniform(0, w), h + 5.0])
            path = _bezier(a, b, float(rng.uniform(-0.25, 0.25) * np.hypot(*(b - a))))
            if _min_dist(path[::4], self.nodes) > 12.0:
                return path
        return None

    def _sample_houses(self, rng: np.random.Generator, n: int) -> list[tuple[int, int, int, int, int]]:
        """Farm buildings (x0, y0, w, h, roof) beside roads, clear of roads and junctions."""
        houses: list[tuple[int, int, int, int, int]] = []
        allpts = np.concatenate([q[::2] for q in self.paths])
        for _ in range(n * 4):
            if len(houses) >= n:
                break
            path = self.paths[int(rng.integers(len(self.paths)))]
            i = int(rng.integers(1, len(path) - 1))
            t = path[min(i + 1, len(path) - 1)] - path[i - 1]
            normal = np.array([-t[1], t[0]]) / max(np.hypot(*t), 1e-9)
            c = path[i] + normal * float(rng.choice([-1, 1]) * rng.uniform(5.0, 7.5))
            hw, hh = int(rng.integers(2, 5)), int(rng.integers(2, 5))
            x0, y0 = int(c[0]) - hw // 2, int(c[1]) - hh // 2
            if x0 < 1 or y0 < 1 or x0 + hw + 1 >= self.map_w or y0 + hh + 1 >= self.map_h:
                continue
            corners = np.array([[x0, y0], [x0 + hw, y0], [x0, y0 + hh], [x0 + hw, y0 + hh]], float)
            if _min_dist(corners, allpts) < 3.0 or _min_dist(corners, self.nodes) < 9.0:
                continue
            houses.append((x0, y0, hw, hh, int(rng.integers(3))))
        return houses

    @property
    def data_shape(self) -> tuple[int, int]:
        return (self.view, self.view)

    # -- the map image ------------------------------------------------------------------------------
    def map_image(self) -> np.ndarray:
        if self._map is None:
            self._map = self._render_map()
        return self._map

    def _render_map(self) -> np.ndarray:
        h, w = self.map_h, self.map_w
        cy, cx, fy, fx = self._crop
        img = terrain_bank()[cy:cy + h, cx:cx + w][::fy, ::fx] * self._tint  # float32
        flat = img.reshape(-1, 3)
        if self._river is not None:
            d = _distance_map(self._river, h, w, 3.6).ravel()
            near = np.flatnonzero(d < 3.6)
            water = np.clip(2.6 - d[near], 0, 1)[:, None]
            bank = np.clip(3.6 - d[near], 0, 1)[:, None] * 0.5
            px = flat[near] * (1 - bank) + np.array([70, 84, 52], np.float32) * bank
            flat[near] = px * (1 - water) + np.array([58, 86, 98], np.float32) * water
        r = self.road_width / 2
        d = _distance_map(np.concatenate(self.paths), h, w, r + 1.6)
        # Junctions and road ends are paved patches a little wider than the road.
        nr = r + 1.8
        for x, y in self.nodes:
            x0, x1 = max(int(x - nr - 2), 0), min(int(x + nr + 3), w)
            y0, y1 = max(int(y - nr - 2), 0), min(int(y + nr + 3), h)
            yy, xx = np.ogrid[y0:y1, x0:x1]
            np.minimum(d[y0:y1, x0:x1], np.hypot(xx - x, yy - y) - (nr - r), out=d[y0:y1, x0:x1])
        d = d.ravel()
        near = np.flatnonzero(d < r + 1.5)
        shoulder = (np.clip(r + 1.5 - d[near], 0, 1) * 0.45)[:, None]
        road = np.clip(r + 0.5 - d[near], 0, 1)[:, None]
        flat[near] = flat[near] * (1 - shoulder) * (1 - road) + self._road_color * road
        roofs = ((150, 72, 56), (188, 186, 178), (112, 104, 98))
        for x0, y0, hw, hh, roof in self._houses:
            img[y0 + 1:y0 + hh + 1, x0 + 1:x0 + hw + 1] *= 0.55  # shadow
            img[y0:y0 + hh, x0:x0 + hw] = roofs[roof]
        ny, nx = self._noise_at
        img += noise_bank()[ny:ny + h, nx:nx + w] * np.float32(self.params.noise)
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)

    # -- GUI state machine ----------------------------------------------------------------------
    def press(self, label: str) -> Effect:
        if label == "UNDO":
            self.pick = None
        return super().press(label)

    def press_button(self, label: str) -> Effect:
        if label in PANS:
            dx, dy = PANS[label]
            step = self.params.pan_step
            self.ox = min(max(self.ox + dx * step, 0), self.max_x)
            self.oy = min(max(self.oy + dy * step, 0), self.max_y)
        elif label in TOOLS:
            self.tool = label
            self.pick = None
        return NO_EFFECT

    def click_canvas(self, u: float, v: float) -> Effect:
        x, y = u + self.ox, v + self.oy
        if self.tool == "NODE":
            self.checkpoint()
            before = self.n_wrong()
            self.ann = Graph(self.ann.nodes + ((float(x), float(y)),), self.ann.edges)
            return Effect(annotated=True, wrong=self.n_wrong() > before)
        k = self.nearest_node(x, y)
        if k is None or k == self.pick:
            self.pick = None
            return NO_EFFECT
        if self.pick is None:
            self.pick = k
            return NO_EFFECT
        e = (min(k, self.pick), max(k, self.pick))
        self.pick = None
        if e in self.ann.edges:
            return NO_EFFECT
        self.checkpoint()
        before = self.n_wrong()
        self.ann = Graph(self.ann.nodes, self.ann.edges + (e,))
        return Effect(annotated=True, wrong=self.n_wrong() > before)

    def nearest_node(self, x: float, y: float) -> int | None:
        """Index of the placed node nearest to map point (x, y) within the snap radius."""
        pts = self.memo("nodes", lambda: np.array(self.ann.nodes, float).reshape(-1, 2))
        if not len(pts):
            return None
        d = np.hypot(pts[:, 0] - x, pts[:, 1] - y)
        k = int(np.argmin(d))
        return k if d[k] <= SNAP_PX else None

    # -- rendering ------------------------------------------------------------------------------
    def view_key(self):
        return (self.ox, self.oy)

    def canvas_key(self):
        return (self.ox, self.oy, self.ann, self.pick)  # not the tool: it shows on its button

    def render_view(self, key: tuple[int, int]) -> np.ndarray:
        ox, oy = key
        return np.ascontiguousarray(self.map_image()[oy:oy + self.view, ox:ox + self.view])

    def _line(self, p0: tuple[int, int], p1: tuple[int, int]) -> np.ndarray:
        key = (p0, p1)
        px = self._lines.get(key)
        if px is None:
            n = max(abs(p1[0] - p0[0]), abs(p1[1] - p0[1])) + 1
            px = self._lines[key] = np.stack([np.round(np.linspace(p0[1], p1[1], n)),
                                              np.round(np.linspace(p0[0], p1[0], n))], 1).astype(np.intp)
        return px

    def _square(self, x: int, y: int) -> np.ndarray:
        """A node's square at map pixel (x, y), (n, 2) rows and columns; kept, as nodes stay put."""
        px = self._squares.get((x, y))
        if px is None:
            px = self._squares[(x, y)] = _square_offsets() + (y, x)
        return px

    def _overlay_pixels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every overlay pixel (map row, map column, colour): edges first, then node squares."""
        px = [(int(math.floor(x + 0.5)), int(math.floor(y + 0.5))) for x, y in self.ann.nodes]
        parts = [self._line(px[i], px[j]) for i, j in self.ann.edges]
        n_edge = sum(len(q) for q in parts)
        parts += [self._square(x, y) for x, y in px]
        if not parts:
            e = np.zeros(0, np.intp)
            return e, e, np.zeros((0, 3), np.uint8)
        allpx = np.concatenate(parts)
        colors = np.empty((len(allpx), 3), np.uint8)
        colors[:n_edge] = EDGE_COLOR
        colors[n_edge:] = NODE_COLOR
        return allpx[:, 0], allpx[:, 1], colors

    def draw_overlays(self, canvas: np.ndarray, mapper) -> None:
        # The graph's pixels on this window, gathered once per window while the graph stands.
        ys, xs, colors = self.memo(("overlay", self.ox, self.oy, mapper, canvas.shape),
                                   lambda: self._window_pixels(mapper, *canvas.shape[:2]))
        canvas[ys, xs] = colors
        if self.pick is not None:
            if mapper.identity:
                x, y = self.ann.nodes[self.pick]
                draw_mark(canvas, int(math.floor(x + 0.5)) - self.ox, int(math.floor(y + 0.5)) - self.oy,
                          PICK_COLOR, "ring", 4)
            else:
                s = mapper.pixel_size
                draw_mark(canvas, *self._canvas_px(*self.ann.nodes[self.pick], s), PICK_COLOR, "ring",
                          max(4, round(4 * s)))

    def _canvas_px(self, x: float, y: float, s: float) -> tuple[int, int]:
        return (int(math.floor((x - self.ox + 0.5) * s)), int(math.floor((y - self.oy + 0.5) * s)))

    def _window_pixels(self, mapper, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The window's overlay pixels (rows, columns, colours), edges first, then nodes."""
        if mapper.identity:
            ys, xs, colors = self.memo("overlay", self._overlay_pixels)
            ys, xs = ys - self.oy, xs - self.ox
            # One unsigned comparison per axis: a negative index wraps to a huge one.
            keep = (ys.view(np.uintp) < self.view) & (xs.view(np.uintp) < self.view)
            return ys[keep], xs[keep], colors[keep]
        s = mapper.pixel_size
        pts = [self._canvas_px(x, y, s) for x, y in self.ann.nodes]
        edges = [line_pixels(*pts[i], *pts[j], h, w) for i, j in self.ann.edges]
        r = max(2, round(2 * s))
        nodes = [mark_pixels("square", r, x, y, h, w) for x, y in pts]
        parts = edges + nodes
        if not parts:
            e = np.zeros(0, np.intp)
            return e, e, np.zeros((0, 3), np.uint8)
        n_edge = sum(len(q[0]) for q in edges)
        colors = np.empty((n_edge + sum(len(q[0]) for q in nodes), 3), np.uint8)
        colors[:n_edge] = EDGE_COLOR
        colors[n_edge:] = NODE_COLOR
        return (np.concatenate([q[0] for q in parts]), np.concatenate([q[1] for q in parts]), colors)

    def complete(self) -> bool:
        """Whether the status line reads every node and every road: ``NODES N/N  EDGES M/M``."""
        return len(self.ann.nodes) == len(self.nodes) and len(self.ann.edges) == len(self.edges)

    def latest_annotation(self) -> tuple[tuple[float, float], ...] | None:
        """The map points of what UNDO would take back: a node (one point) or an edge (its two
        ends); None with nothing to take back."""
        if not self._undo_stack:
            return None
        before = self._undo_stack[-1]
        if len(before.nodes) < len(self.ann.nodes):
            return (self.ann.nodes[-1],)
        if len(before.edges) < len(self.ann.edges):
            i, j = self.ann.edges[-1]
            return (self.ann.nodes[i], self.ann.nodes[j])
        return None

    def status(self) -> tuple[str, ...]:
        line2 = (f"NODES {len(self.ann.nodes)}/{len(self.nodes)}  "
                 f"EDGES {len(self.ann.edges)}/{len(self.edges)}")
        if self.tool == "EDGE":
            if self.pick is None:
                line2 += "  FIRST -"
            else:
                x, y = self.ann.nodes[self.pick]
                line2 += f"  FIRST {int(x + 0.5)},{int(y + 0.5)}"
        return (f"{self.tool} TOOL  VIEW X{self.ox}/{self.max_x} Y{self.oy}/{self.max_y}", line2)

    def selected(self) -> tuple[str, ...]:
        return (self.tool,)

    def complete(self) -> bool:  # NODES N/N  EDGES M/M
        return len(self.ann.nodes) == len(self.nodes) and len(self.ann.edges) == len(self.edges)

    # -- latents and score ----------------------------------------------------------------------
    def position(self) -> float:
        """The window's place in raster order over the map (0: top left, 1: bottom right)."""
        step = self.params.pan_step
        nx, ny = self.max_x // step + 1, self.max_y // step + 1
        if nx * ny == 1:
            return 0.0
        return ((self.oy // step) * nx + self.ox // step) / (nx * ny - 1)

    def _match(self) -> tuple[dict[int, int], int]:
        return self.memo("match", self._compute_match)

    def node_match(self) -> dict[int, int]:
        """Placed node -> the true node it matches (one-to-one, within 3 px)."""
        return self._match()[0]

    def target_point(self, k: int) -> tuple[float, float] | None:
        """True node ``k`` where it is on the window; for ``k = n_nodes + r``, the end of road ``r``
        that the EDGE tool needs next: the one not picked when the other is, else the first end on
        the window."""
        n = len(self.nodes)
        if 0 <= k < n:
            return self._on_window(*self.nodes[k])
        if not n <= k < n + len(self.edges):
            return None
        a, b = self.edges[k - n]
        picked = None if self.pick is None else self.node_match().get(self.pick)
        ends = (b,) if picked == a else (a,) if picked == b else (a, b)
        return next((p for p in (self._on_window(*self.nodes[e]) for e in ends) if p), None)

    def _on_window(self, x: float, y: float) -> tuple[float, float] | None:
        u, v = float(x - self.ox), float(y - self.oy)
        return (u, v) if 0 <= u <= self.view - 1 and 0 <= v <= self.view - 1 else None

    def _compute_match(self) -> tuple[dict[int, int], int]:
        """Greedy one-to-one node matching within 3 px; returns (placed -> true node, right edges)."""
        match: dict[int, int] = {}
        if self.ann.nodes:
            p = np.array(self.ann.nodes, float)
            d = np.hypot(p[:, None, 0] - self.nodes[None, :, 0], p[:, None, 1] - self.nodes[None, :, 1])
            used: set[int] = set()
            ii, jj = np.nonzero(d <= MATCH_PX)
            # Closest pairs first; a stable sort keeps equal distances in row-major order.
            order = np.argsort(d[ii, jj], kind="stable")
            for i, j in zip(ii[order].tolist(), jj[order].tolist()):
                if i not in match and j not in used:
                    match[i] = j
                    used.add(j)
        right = 0
        for i, j in self.ann.edges:
            if i in match and j in match:
                a, b = match[i], match[j]
                right += (min(a, b), max(a, b)) in self.edge_set
        return match, right

    def n_wrong(self) -> int:
        match, right = self._match()
        return len(self.ann.nodes) - len(match) + len(self.ann.edges) - right

    def f1s(self) -> tuple[float, float]:
        """(node F1, edge F1) of the current annotation."""
        match, right = self._match()
        pn, pe = len(self.ann.nodes), len(self.ann.edges)
        node_f1 = 2 * len(match) / (pn + len(self.nodes))
        edge_f1 = 2 * right / (pe + len(self.edges)) if pe + len(self.edges) else 1.0
        return node_f1, edge_f1

    def score(self) -> tuple[float, bool]:
        node_f1, edge_f1 = self.f1s()
        return (node_f1 + edge_f1) / 2, bool(node_f1 >= 0.9 and edge_f1 >= 0.9)


@lru_cache(maxsize=1)
def _square_offsets() -> np.ndarray:
    k = np.arange(-2, 3)
    dy, dx = np.meshgrid(k, k, indexing="ij")
    m = (np.abs(dy) == 2) | (np.abs(dx) == 2)
    return np.stack([dy[m], dx[m]], 1).astype(np.intp)


# -- the virtual annotator -------------------------------------------------------------------------
Tile = tuple[int, int]  # a window position (ox, oy)
EdgeId = tuple[tuple[float, float], tuple[float, float]]  # an edge by its nodes' map positions


class RoadAnnotator(Annotator, task=RoadNetworkConstruction):
    """Surveys the map, works it region by region (the junctions it sees, then the roads between
    them) and clicks DONE as soon as the status reads ``NODES N/N  EDGES M/M``; with the counts
    still short (or over) at the end of the work, it looks over the map once more for junctions
    it missed, and clicks DONE there (personas with ``done_on_counts=False`` always walk that pass).

    A policy of the state: each click follows from the graph drawn so far, the window, the tool and
    the pick, and from what the annotator remembers having seen or done: how far its passes over the
    map have got, the junctions it overlooked, the slips it made and those it chose to leave. From a
    state someone else left it takes back (UNDO) what looks wrong, then works the map the same way.

    ``target`` is a true node index while placing (or finding) that node, ``n_nodes + r`` while
    joining true road ``r``. An "item" below is such a target.
    """

    persona: RoadPersona
    task: RoadNetworkConstruction
    MARGIN = 5  # a node is "in view" this far inside the window's border
    PEEK_MARGIN = 20  # ... and this close to the border, worth a pan to see its surroundings
    CLICK_MARGIN = 2  # a placed node this far inside the border can be clicked (noise <= 1.2 px)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        t = self.task
        self.n_nodes = len(t.nodes)
        # The order it places nodes in: top to bottom in 20-px bands, left to right in a band.
        self.node_order = sorted(range(self.n_nodes),
                                 key=lambda k: (t.nodes[k][1] // 20, t.nodes[k][0]))
        self.passes = self._passes()
        self.pass_no = self.tile_no = 0  # how far the passes over the map have got
        self.overlooked: dict[int, Tile] = {}  # true node -> the region where it was missed
        self.redo: set[int] = set()  # items to annotate as a correction: noticed, found, taken back
        self.slipped: set[int] = set()  # items it slipped on (once per item)
        self.done_seen: set[int] = set()  # items it has seen annotated
        self.joined_past: set[tuple[int, Tile]] = set()  # (missed node, region): shortcut made
        self.checked: set[Tile] = set()  # regions it has looked around after finishing them
        self.left_nodes: dict[tuple[float, float], int] = {}  # off-junction nodes left -> true node
        self.left_edges: set[EdgeId] = set()  # wrong edges left
        # A wrong edge noticed only once the next road is joined: (edge, the road item it was
        # meant for, the graph's (nodes, edges) counts when it was made).
        self.late: tuple[EdgeId, int, tuple[int, int]] | None = None
        # The slip just clicked, (kind, its node or edge, item, occasion), for the next state to
        # confirm.
        self.slip: tuple | None = None
        self.taken: dict[int, int] = {}  # placed node -> the true node it is taken for
        self.placed: dict[int, int] = {}  # true node -> the placed node taken for it
        self._seen_ann: Graph | None = None

    def _passes(self) -> list[tuple[str, list[Tile]]]:
        """The persona's passes over the map: (what it does on the way, the regions in order)."""
        p, tiles = self.persona, self._tiles()
        passes = [("survey", tiles)] if p.survey else []
        if p.order == "region":
            passes.append(("work", tiles))  # nodes, then roads, in each region
        else:
            passes += [("nodes", tiles), ("edges", tiles[::-1])]
        if p.verify:
            passes.append(("verify", passes[-1][1][::-1]))
        return passes

    def _tiles(self) -> list[Tile]:
        """Window positions ``region_stride`` pans apart covering the map, in serpentine rows."""
        t = self.task
        step = t.params.pan_step * self.persona.region_stride

        def axis(mx):
            v = list(range(0, mx + 1, step))
            return v if v[-1] == mx else v + [mx]

        rows = []
        for r, oy in enumerate(axis(t.max_y)):
            xs = axis(t.max_x)
            rows += [(ox, oy) for ox in (xs if r % 2 == 0 else xs[::-1])]
        return rows

    # -- the policy -------------------------------------------------------------------------------
    def next_intent(self) -> Intent:
        self._observe()
        if self.late is not None and not self._late_still_unseen():
            self.late = None
        if self._sees_wrong():
            # UNDO takes back the latest annotation: again and again until what is left looks right.
            return self._undo()
        if self.persona.done_on_counts and self.task.complete():
            return self.press("DONE", "finish")  # the status reads NODES N/N  EDGES M/M
        while self.pass_no < len(self.passes):
            kind, tiles = self.passes[self.pass_no]
            intent = self._work_at(kind, tiles[self.tile_no])
            if intent is not None:
                return intent
            self.tile_no += 1
            if self.tile_no == len(tiles):
                self.pass_no, self.tile_no = self.pass_no + 1, 0
        return self._leftover() or self.press("DONE", "finish")

    def _undo(self) -> Intent:
        """UNDO where what it takes back is drawn: with the latest node (or every point of the
        latest edge) off the window, a pan towards it first."""
        t = self.task
        latest = t.latest_annotation()
        if latest is not None:
            a = np.asarray(latest[0], float)
            b = np.asarray(latest[-1], float)
            pts = a + np.linspace(0.0, 1.0, 17)[:, None] * (b - a)
            if not any(self._in_view(x, y, 1) for x, y in pts):
                near = min(latest, key=lambda q: math.hypot(q[0] - t.ox - t.view / 2,
                                                             q[1] - t.oy - t.view / 2))
                label = self._pan_towards(*near)
                # A node on the map's own border is as drawn as it gets once the window is
                # clamped there: a pan that cannot move would repeat forever.
                if self._pan_moves(label):
                    return self.press(label, "correct", -1, True)
        return self.press("UNDO", "correct", -1, True)

    def _work_at(self, kind: str, tile: Tile) -> Intent | None:
        """The next click of a pass of ``kind`` in region ``tile``; None once the window is on the
        region and nothing is left to do there."""
        t = self.task
        here = (t.ox, t.oy) == tile
        if kind == "survey":
            return None if here else self._goto(tile, "survey")
        if here and kind != "edges":  # a look for junctions: while placing them, and verifying
            self._look(kind, tile)
        nodes = self._nodes_todo(tile, may_miss=kind in ("work", "nodes"))
        if nodes:
            return self._place(nodes[0], tile)
        if kind in ("work", "edges"):
            intent = self._discover(tile)
            if intent is not None:
                return intent
            nodes = self._nodes_todo(tile, may_miss=False)  # a junction found on the way
            if nodes:
                return self._place(nodes[0], tile)
        if kind != "nodes":
            roads = self._roads_todo(tile)
            if roads:
                return self._join_road(roads[0], tile)
        if kind == "work":
            intent = self._check(tile)
            if intent is not None:
                return intent
        return None if here else self._goto(tile, "verify" if kind == "verify" else "navigate")

    def _leftover(self) -> Intent | None:
        """After its passes, anything still missing that it knows of (work taken back since, or
        left by someone else): nodes top to bottom, then roads."""
        nodes = [k for k in self.node_order if k not in self.placed and k not in self.overlooked]
        if nodes:
            return self._place(nodes[0], None)
        joined = self._joined()
        roads = [r for r, (a, b) in enumerate(self.task.edges)
                 if r not in joined and a in self.placed and b in self.placed]
        return self._join_road(roads[0], None) if roads else None

    # -- what it knows ----------------------------------------------------------------------------
    def _observe(self) -> None:
        """Updates what it knows from the graph on the screen, when the graph has changed."""
        t = self.task
        slip, self.slip = self.slip, None
        if t.ann is self._seen_ann:
            return
        self._seen_ann = t.ann
        nodes, edges = set(t.ann.nodes), {self._edge_id(i, j) for i, j in t.ann.edges}
        self.left_nodes = {pos: k for pos, k in self.left_nodes.items() if pos in nodes}
        self.left_edges &= edges
        if slip is not None and (slip[1] in nodes or slip[1] in edges):
            self._made(*slip)
        self.taken = dict(t.node_match())
        for i, pos in enumerate(t.ann.nodes):
            if pos in self.left_nodes:
                self.taken.setdefault(i, self.left_nodes[pos])
        self.placed = {}
        for i, k in self.taken.items():  # matched nodes first
            self.placed.setdefault(k, i)
        done = set(self.placed) | {self.n_nodes + r for r in self._joined()}
        self.redo |= self.done_seen - done  # taken back by an UNDO: made again as a correction
        self.done_seen |= done
        self.redo -= done

    def _made(self, kind: str, ident: tuple, item: int, occasion: tuple[int, Tile] | None) -> None:
        """A slip it clicked is on the screen: whether it notices (now, or after the next road)."""
        p = self.persona
        if kind == "shortcut":
            self.joined_past.add(occasion)
            if self.decide(("notice shortcut", occasion), p.notice_rate):
                self._found(item)
            else:
                self.left_edges.add(ident)
            return
        self.slipped.add(item)
        if not self.decide(("notice", item), p.notice_rate):
            if kind == "node":
                self.left_nodes[ident] = item
            else:
                self.left_edges.add(ident)
            return
        self.redo.add(item)
        if kind == "edge" and self.decide(("late", item), p.late_notice_rate):
            self.late = (ident, item, (len(self.task.ann.nodes), len(self.task.ann.edges)))

    def _sees_wrong(self) -> bool:
        """Whether the graph holds a wrong annotation it has not chosen to leave (for now): a node
        it takes for no junction, or an edge along no road."""
        t = self.task
        if not (self.left_nodes or self.left_edges or self.late):  # it tolerates nothing wrong
            return t.n_wrong() > 0
        if len(self.taken) < len(t.ann.nodes):
            return True
        tolerated = self.left_edges | ({self.late[0]} if self.late else set())
        for i, j in t.ann.edges:
            a, b = self.taken[i], self.taken[j]
            if (min(a, b), max(a, b)) not in t.edge_set and self._edge_id(i, j) not in tolerated:
                return True
        return False

    def _late_still_unseen(self) -> bool:
        """A wrong edge noticed late stands until one more road is joined, as long as the next
        road of the region has both ends in view."""
        t = self.task
        ident, _, counts = self.late
        if (len(t.ann.nodes), len(t.ann.edges)) != counts:
            return False
        if self._edge_id(*t.ann.edges[-1]) != ident:
            return False
        if self.pass_no >= len(self.passes):
            return False
        kind, tiles = self.passes[self.pass_no]
        if kind not in ("work", "edges"):
            return False
        tile = tiles[self.tile_no]
        roads = self._roads_todo(tile)
        return bool(roads) and all(self._visible(e, tile) for e in t.edges[roads[0]])

    def _joined(self) -> set[int]:
        """True roads with an edge between nodes taken for their two ends (and the road a wrong
        edge noticed late was meant for, until it is noticed)."""
        t = self.task
        joined = set()
        for i, j in t.ann.edges:
            a, b = self.taken.get(i), self.taken.get(j)
            r = None if a is None or b is None else t.edge_set.get((min(a, b), max(a, b)))
            if r is not None:
                joined.add(r)
        if self.late is not None:
            joined.add(self.late[1] - self.n_nodes)
        return joined

    def _first_try(self, item: int) -> bool:
        """Whether it works on ``item`` for the first time (a slip happens on a first try only)."""
        return item not in self.done_seen and item not in self.redo and item not in self.slipped

    def _found(self, m: int) -> None:
        """Missed junction m is seen: it is placed next, as a correction."""
        del self.overlooked[m]
        self.redo.add(m)

    def _edge_id(self, i: int, j: int) -> EdgeId:
        a, b = self.task.ann.nodes[i], self.task.ann.nodes[j]
        return (a, b) if a <= b else (b, a)

    # -- regions and what is left in them ---------------------------------------------------------
    def _look(self, kind: str, tile: Tile) -> None:
        """A look at region ``tile``: a junction missed elsewhere may be seen now (on the verify
        pass, also one missed here)."""
        for m in sorted(self.overlooked):
            fresh = kind == "verify" or self.overlooked[m] != tile
            if fresh and self._visible(m, tile) and self.decide(("look", kind, m, tile),
                                                                self.persona.notice_rate):
                self._found(m)

    def _nodes_todo(self, tile: Tile, may_miss: bool) -> list[int]:
        """True nodes in view of region ``tile`` that are not placed, top to bottom. On a first
        look it may overlook one (a mistake, found later or never)."""
        todo = []
        for k in self.node_order:
            if k in self.placed or k in self.overlooked or not self._visible(k, tile):
                continue
            if may_miss and self._first_try(k) and self.decide(("miss", k), self.persona.miss_rate):
                self.overlooked[k] = tile
                continue
            todo.append(k)
        return todo

    def _roads_todo(self, tile: Tile) -> list[int]:
        """Roads not joined yet with both ends placed and one in view of region ``tile``: those
        with both ends in view first, then top to bottom."""
        t, joined, todo = self.task, self._joined(), []
        for r, (a, b) in enumerate(t.edges):
            if r in joined or a not in self.placed or b not in self.placed:
                continue
            va, vb = self._visible(a, tile), self._visible(b, tile)
            if va or vb:
                todo.append((not (va and vb), t.nodes[a][1] + t.nodes[b][1], r))
        return [r for *_, r in sorted(todo)]

    def _discover(self, tile: Tile) -> Intent | None:
        """Tracing the roads of region ``tile`` into a junction it missed: it may first join the
        placed junctions on either side past it (a shortcut, wrong), then may see the junction."""
        t, p = self.task, self.persona
        for m in sorted(self.overlooked):
            if not self._visible(m, tile) or not any(b in self.placed for b in t.neighbours[m]):
                continue
            occasion = (m, tile)
            if occasion not in self.joined_past:
                pairs = self._shortcuts(m, tile)
                if pairs and self.decide(("shortcut", occasion), p.shortcut_rate):
                    a, c = pairs[int(self.draw(("shortcut pair", occasion)).integers(len(pairs)))]
                    return self._join(a, c, m, tile, shortcut=occasion)
            if self.decide(("find", occasion), p.notice_rate):
                self._found(m)
        return None

    def _shortcuts(self, m: int, tile: Tile) -> list[tuple[int, int]]:
        """Pairs of placed neighbours of missed node m in view that a shortcut past m would join."""
        t = self.task
        nb = [b for b in t.neighbours[m] if b in self.placed and self._visible(b, tile)]
        return [(a, c) for i, a in enumerate(nb) for c in nb[i + 1:]
                if (min(a, c), max(a, c)) not in t.edge_set
                and (min(self.placed[a], self.placed[c]), max(self.placed[a], self.placed[c]))
                not in t.ann.edges]

    def _check(self, tile: Tile) -> Intent | None:
        """After a region, now and then a pan one step away and back, to look around it."""
        t = self.task
        if tile in self.checked or not self.decide(("check", tile), self.persona.check_rate):
            return None
        options = [label for label in PANS if self._step(tile, label) is not None]
        if not options:
            return None
        label = options[int(self.draw(("check direction", tile)).integers(len(options)))]
        if (t.ox, t.oy) == self._step(tile, label):
            self.checked.add(tile)
            return self.press(BACK[label], "verify")
        if (t.ox, t.oy) == tile:
            return self.press(label, "verify")
        return self._goto(tile, "navigate")

    # -- nodes ------------------------------------------------------------------------------------
    def _place(self, k: int, home: Tile | None) -> Intent:
        """The next click towards a node on junction k: from region ``home`` (peeking first where
        the persona does), or, without a region, from wherever the window is."""
        t = self.task
        fix = k in self.redo
        nav = "correct" if fix else "navigate"
        peek = None if fix or home is None else self._peek(k, home)
        if home is not None and (t.ox, t.oy) not in (home, self._step(home, peek)):
            return self._goto(home, nav, k, fix)
        if t.tool != "NODE":
            return self.press("NODE", "correct" if fix else "select", k, fix)
        if peek is not None and (t.ox, t.oy) == home:
            return self.press(peek, "inspect", k)
        x, y = t.nodes[k]
        if not self._in_view(x, y, self.MARGIN):
            return self._pan_to_see(x, y, nav, k, fix)
        if self._first_try(k) and self.decide(("offnode", k), self.persona.offnode_rate):
            slip = self._offnode(k)
            if slip is not None:
                return slip
        return self.place(x - t.ox, y - t.oy, "correct" if fix else "place", k, fix)

    def _peek(self, k: int, home: Tile) -> str | None:
        """The pan it makes to see the surroundings of junction k, near region ``home``'s border,
        before placing it (if it does): one that brings k further inside the window."""
        if self._visible(k, home, self.PEEK_MARGIN) or not self.decide(("peek", k),
                                                                      self.persona.peek_rate):
            return None
        x, y = self.task.nodes[k]
        ox, oy, m, far = home[0], home[1], self.PEEK_MARGIN, self.task.view - 1 - self.PEEK_MARGIN
        for label, near in (("LEFT", x < ox + m), ("RIGHT", x > ox + far), ("UP", y < oy + m),
                            ("DOWN", y > oy + far)):
            if near and self._step(home, label) is not None:
                return label
        return None

    def _offnode(self, k: int) -> Intent | None:
        """A slip: node k placed on one of its roads 4.5-6 px from the junction (None where no
        such point is in view)."""
        t = self.task
        dist = float(self.draw(("offnode distance", k)).uniform(4.5, 6.0))
        for b in t.neighbours[k]:
            road = t.edge_set[(min(k, b), max(k, b))]
            path = t.paths[road] if t.edges[road][0] == k else t.paths[road][::-1]
            wx, wy = path[int(np.argmin(np.abs(np.hypot(*(path - t.nodes[k]).T) - dist)))]
            if self._in_view(wx, wy, 1):
                intent = self.place(wx - t.ox, wy - t.oy, "place", k, sigma=0.0)
                u, v = self.session.mapper.to_data(intent.x, intent.y)
                self.slip = ("node", (float(u + t.ox), float(v + t.oy)), k, None)
                return intent
        return None

    # -- edges ------------------------------------------------------------------------------------
    def _join_road(self, r: int, home: Tile | None) -> Intent:
        """The next click towards joining road r, from its end in view of region ``home`` (or of
        the window)."""
        a, b = self.task.edges[r]
        view = home if home is not None else (self.task.ox, self.task.oy)
        first, second = (a, b) if self._visible(a, view) or not self._visible(b, view) else (b, a)
        return self._join(first, second, self.n_nodes + r, home)

    def _join(self, first: int, second: int, target: int, home: Tile | None,
              shortcut: tuple[int, Tile] | None = None) -> Intent:
        """The next click towards an edge between the nodes placed for true nodes ``first`` and
        ``second``: pick the first (from region ``home``), pan to the second if needed, click it.
        ``shortcut`` names the occasion when the edge is the wrong one past a missed junction."""
        t = self.task
        fix = target in self.redo
        nav, select = ("correct", "correct") if fix else ("navigate", "select")
        i, j = self.placed[first], self.placed[second]
        if t.tool == "EDGE" and t.pick is not None and t.pick not in (i, j):
            return self.press("EDGE", select, target, fix)  # choosing the tool again drops a pick
        if t.pick is None:
            if home is not None and (t.ox, t.oy) != home and self._sees(home, *t.ann.nodes[i],
                                                                         self.CLICK_MARGIN):
                return self._goto(home, nav, target, fix)
            if t.tool != "EDGE":
                return self.press("EDGE", select, target, fix)
            return self._click_node(i, target, fix)
        other = j if t.pick == i else i
        if shortcut is not None and self._clickable(other):
            self.slip = ("shortcut", self._edge_id(i, j), target, shortcut)
        elif (t.pick == i and (t.ox, t.oy) == home and self.late is None and self._clickable(j)
              and self._first_try(target)):
            decoys = self._decoys(first, second)
            if decoys and self.decide(("wrong edge", target), self.persona.wrong_edge_rate):
                self.slip = ("edge", self._edge_id(i, decoys[0]), target, None)
                return self._click_node(decoys[0], target, False)
        return self._click_node(other, target, fix)

    def _click_node(self, idx: int, target: int, fix: bool) -> Intent:
        """A click on placed node ``idx``, panning it into view first if it is not."""
        t = self.task
        x, y = t.ann.nodes[idx]
        if not self._clickable(idx):
            return self._pan_to_see(x, y, "correct" if fix else "navigate", target, fix)
        return self.place(x - t.ox, y - t.oy, "correct" if fix else "place", target, fix)

    def _decoys(self, a: int, b: int) -> list[int]:
        """Placed nodes in view that a slip could join to a instead of b, nearest to b first."""
        t = self.task
        pa = self.placed[a]
        linked = {j if i == pa else i for i, j in t.ann.edges if pa in (i, j)}
        out = []
        for idx, (x, y) in enumerate(t.ann.nodes):
            if idx in (pa, self.placed[b]) or idx in linked or not self._in_view(x, y, self.MARGIN):
                continue
            g = self.taken.get(idx)
            if g is not None and (min(a, g), max(a, g)) in t.edge_set:
                continue
            out.append((math.hypot(x - t.nodes[b][0], y - t.nodes[b][1]), idx))
        return [idx for _, idx in sorted(out)]

    # -- the window -------------------------------------------------------------------------------
    def _sees(self, tile: Tile, x: float, y: float, margin: float) -> bool:
        """Whether map point (x, y) is ``margin`` inside the window at ``tile``."""
        far = self.task.view - 1 - margin
        return tile[0] + margin <= x <= tile[0] + far and tile[1] + margin <= y <= tile[1] + far

    def _visible(self, k: int, tile: Tile, margin: float | None = None) -> bool:
        return self._sees(tile, *self.task.nodes[k], self.MARGIN if margin is None else margin)

    def _in_view(self, x: float, y: float, margin: float) -> bool:
        return self._sees((self.task.ox, self.task.oy), x, y, margin)

    def _clickable(self, idx: int) -> bool:
        return self._in_view(*self.task.ann.nodes[idx], self.CLICK_MARGIN)

    def _step(self, tile: Tile, label: str | None) -> Tile | None:
        """The window position one pan ``label`` from ``tile`` (``tile`` itself for no pan); None
        past the map's border."""
        if label is None:
            return tile
        t, (dx, dy) = self.task, PANS[label]
        x, y = tile[0] + dx * t.params.pan_step, tile[1] + dy * t.params.pan_step
        return (x, y) if 0 <= x <= t.max_x and 0 <= y <= t.max_y else None

    def _goto(self, tile: Tile, phase: str, target: int = -1, fix: bool = False) -> Intent:
        """One pan towards window position ``tile``: along x first (y first at the persona's
        ``1 - x_first_rate``; the default always x first)."""
        t = self.task
        dx, dy = tile[0] - t.ox, tile[1] - t.oy
        if dx and (not dy or self.decide(("x first", tile), self.persona.x_first_rate)):
            return self.press("RIGHT" if dx > 0 else "LEFT", phase, target, fix)
        return self.press("DOWN" if dy > 0 else "UP", phase, target, fix)

    def _pan_moves(self, label: str) -> bool:
        """Whether pan ``label`` moves the window (it is clamped at the map's border)."""
        t = self.task
        return {"LEFT": t.ox > 0, "RIGHT": t.ox < t.max_x, "UP": t.oy > 0,
                "DOWN": t.oy < t.max_y}[label]

    def _pan_to_see(self, x: float, y: float, phase: str, target: int, fix: bool = False) -> Intent:
        """One pan that brings map point (x, y) towards ``MARGIN`` inside the window."""
        return self.press(self._pan_towards(x, y), phase, target, fix)

    def _pan_towards(self, x: float, y: float) -> str:
        """The pan that brings map point (x, y) towards ``MARGIN`` inside the window."""
        t, m = self.task, self.MARGIN
        if x < t.ox + m:
            return "LEFT"
        if x > t.ox + t.view - 1 - m:
            return "RIGHT"
        if y < t.oy + m:
            return "UP"
        return "DOWN"
