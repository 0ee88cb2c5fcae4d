"""road_network_construction: trace the road network of an aerial map as a graph.

Analogue: vectorising roads, vessels or neurites as graphs (OpenStreetMap-style editors, vessel and
neurite tracers): choose a tool, then click node pairs, on a map larger than the window.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator, NamedTuple

import numpy as np

from annobc.gui import draw_line, draw_mark
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
    n_nodes: tuple[int, int] = (5, 12)  # junctions and road ends
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
    region_stride: int = 1  # pan clicks between two work regions (and survey / verify stops)
    miss_rate: float = 0.08  # overlooks a node in its region (found later)
    shortcut_rate: float = 0.5  # ... and then joins its neighbours past it (a wrong edge)
    wrong_edge_rate: float = 0.11  # joins a node to the wrong neighbour
    late_notice_rate: float = 0.3  # ... and notices only after joining the next road
    offnode_rate: float = 0.045  # places a node 4-6 px off the junction, on the road
    peek_rate: float = 0.6  # pans towards a node near the window's border before placing it
    check_rate: float = 0.15  # after a region, pans one step away and back to check it


class Graph(NamedTuple):
    """The annotation state: placed nodes (map x, y) and edges (i, j), i < j, between them."""

    nodes: tuple[tuple[float, float], ...] = ()
    edges: tuple[tuple[int, int], ...] = ()


class RoadNetworkConstruction(Task):
    """Trace the road network of an aerial map as a graph of nodes and edges.

    ## Description
    An aerial-like map (fields with crop rows, hedgerows, trees, farm buildings, sometimes a river)
    1.5-2x the window in each direction carries a planar road network: 5-12 nodes (junctions and
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
    ``NODES <n>  EDGES <m>`` (+ ``FIRST <x>,<y>`` or ``FIRST -`` with the EDGE tool).

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
    """

    task_id = "road_network_construction"
    version = 0
    instruction = ("Trace the road network: a node on every junction and road end, an edge along "
                   "every road between two nodes.")
    Params = Params
    buttons = (Button("UP", "navigate"), Button("DOWN", "navigate"), Button("LEFT", "navigate"),
               Button("RIGHT", "navigate"), Button("NODE", "select"), Button("EDGE", "select"),
               Button("UNDO", "undo"), Button("DONE", "done"))
    personas = {
        "default": RoadPersona(),
        "two_pass": RoadPersona(order="two_pass", survey=False, verify=True, peek_rate=0.2,
                                check_rate=0.0, region_stride=2),
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

    def _overlay_pixels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every overlay pixel (map row, map column, colour): edges first, then node squares."""
        px = [(int(math.floor(x + 0.5)), int(math.floor(y + 0.5))) for x, y in self.ann.nodes]
        parts = [self._line(px[i], px[j]) for i, j in self.ann.edges]
        n_edge = sum(len(q) for q in parts)
        sq = _square_offsets()
        parts += [sq + (y, x) for x, y in px]
        if not parts:
            e = np.zeros(0, np.intp)
            return e, e, np.zeros((0, 3), np.uint8)
        allpx = np.concatenate(parts)
        colors = np.empty((len(allpx), 3), np.uint8)
        colors[:n_edge] = EDGE_COLOR
        colors[n_edge:] = NODE_COLOR
        return allpx[:, 0], allpx[:, 1], colors

    def draw_overlays(self, canvas: np.ndarray, mapper) -> None:
        if mapper.identity:
            ys, xs, colors = self.memo("overlay", self._overlay_pixels)
            if len(ys):
                ys, xs = ys - self.oy, xs - self.ox
                keep = (ys >= 0) & (ys < self.view) & (xs >= 0) & (xs < self.view)
                canvas[ys[keep], xs[keep]] = colors[keep]
            if self.pick is not None:
                x, y = self.ann.nodes[self.pick]
                draw_mark(canvas, int(math.floor(x + 0.5)) - self.ox, int(math.floor(y + 0.5)) - self.oy,
                          PICK_COLOR, "ring", 4)
            return
        s = mapper.pixel_size

        def cpx(x, y):
            return (int(math.floor((x - self.ox + 0.5) * s)), int(math.floor((y - self.oy + 0.5) * s)))

        pts = [cpx(x, y) for x, y in self.ann.nodes]
        for i, j in self.ann.edges:
            draw_line(canvas, *pts[i], *pts[j], EDGE_COLOR)
        r = max(2, round(2 * s))
        for x, y in pts:
            draw_mark(canvas, x, y, NODE_COLOR, "square", r)
        if self.pick is not None:
            draw_mark(canvas, *pts[self.pick], PICK_COLOR, "ring", max(4, round(4 * s)))

    def status(self) -> tuple[str, ...]:
        line2 = f"NODES {len(self.ann.nodes)}  EDGES {len(self.ann.edges)}"
        if self.tool == "EDGE":
            if self.pick is None:
                line2 += "  FIRST -"
            else:
                x, y = self.ann.nodes[self.pick]
                line2 += f"  FIRST {int(x + 0.5)},{int(y + 0.5)}"
        return (f"{self.tool} TOOL  VIEW X{self.ox}/{self.max_x} Y{self.oy}/{self.max_y}", line2)

    def selected(self) -> tuple[str, ...]:
        return (self.tool,)

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

    def _compute_match(self) -> tuple[dict[int, int], int]:
        """Greedy one-to-one node matching within 3 px; returns (placed -> true node, right edges)."""
        match: dict[int, int] = {}
        if self.ann.nodes:
            p = np.array(self.ann.nodes, float)
            d = np.hypot(p[:, None, 0] - self.nodes[None, :, 0], p[:, None, 1] - self.nodes[None, :, 1])
            used: set[int] = set()
            for i, j in sorted(zip(*np.nonzero(d <= MATCH_PX)), key=lambda ij: d[ij]):
                if int(i) not in match and int(j) not in used:
                    match[int(i)] = int(j)
                    used.add(int(j))
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
class RoadAnnotator(Annotator, task=RoadNetworkConstruction):
    """Pans region by region, places the junctions it sees, joins them along the roads.

    ``target`` is a true node index while placing that node, and ``n_nodes + k`` while joining
    true road ``k``.
    """

    persona: RoadPersona
    task: RoadNetworkConstruction
    MARGIN = 5  # a node is "in view" this far inside the window's border

    def script(self) -> Iterator[Intent]:
        p = self.persona
        self.placed: dict[int, int] = {}  # true node -> placed node index
        self.joined: set[int] = set()  # true roads joined
        self.overlooked: dict[int, tuple[int, int]] = {}  # true node -> region where it was missed
        tiles = self._tiles()
        if p.survey:  # an overview of the whole map, then back to the top left to start
            for tile in tiles:
                yield from self._goto(tile, "survey")
        if p.order == "region":
            for tile in tiles:
                yield from self._goto(tile, "navigate")
                yield from self._place_nodes(tile)
                yield from self._join_edges(tile)
                if self.chance(p.check_rate):
                    yield from self._check()
        else:
            for tile in tiles:
                yield from self._goto(tile, "navigate")
                yield from self._place_nodes(tile)
            tiles = tiles[::-1]
            for tile in tiles:
                yield from self._goto(tile, "navigate")
                yield from self._join_edges(tile)
        if p.verify:
            for tile in tiles[::-1]:
                yield from self._goto(tile, "verify")
                for m in sorted(self.overlooked):
                    if self._visible(m) and self.chance(p.notice_rate):
                        yield from self._found(m)
                        yield from self._join_edges(tile, only=m)
        yield self.press("DONE", "finish")

    # -- geometry and navigation ------------------------------------------------------------------
    def _tiles(self) -> list[tuple[int, int]]:
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

    def _visible(self, k: int, margin: int | None = None) -> bool:
        x, y = self.task.nodes[k]
        return self._in_view(x, y, self.MARGIN if margin is None else margin)

    def _in_view(self, x: float, y: float, m: float) -> bool:
        t = self.task
        return t.ox + m <= x <= t.ox + t.view - 1 - m and t.oy + m <= y <= t.oy + t.view - 1 - m

    def _goto(self, tile: tuple[int, int], phase: str, target: int = -1,
              correction: bool = False) -> Iterator[Intent]:
        t = self.task
        x_first = self.chance(0.5)
        for axis in ((0, 1) if x_first else (1, 0)):
            while (t.ox, t.oy)[axis] != tile[axis]:
                ahead = tile[axis] > (t.ox, t.oy)[axis]
                label = ("RIGHT" if ahead else "LEFT") if axis == 0 else ("DOWN" if ahead else "UP")
                yield self.press(label, phase, target, correction)

    def _pan_to_see(self, x: float, y: float, phase: str, target: int,
                    correction: bool = False) -> Iterator[Intent]:
        t, m = self.task, self.MARGIN
        while not self._in_view(x, y, m):
            if x < t.ox + m:
                label = "LEFT"
            elif x > t.ox + t.view - 1 - m:
                label = "RIGHT"
            elif y < t.oy + m:
                label = "UP"
            else:
                label = "DOWN"
            yield self.press(label, phase, target, correction)

    def _check(self) -> Iterator[Intent]:
        """Pans one step and back to look at the region's surroundings."""
        t = self.task
        options = [lab for lab, (dx, dy) in PANS.items()
                   if 0 <= t.ox + dx * t.params.pan_step <= t.max_x
                   and 0 <= t.oy + dy * t.params.pan_step <= t.max_y]
        if not options:
            return
        label = options[int(self.rng.integers(len(options)))]
        yield self.press(label, "verify")
        yield self.press(BACK[label], "verify")

    def _select(self, tool: str, phase: str = "select", target: int = -1,
                correction: bool = False) -> Iterator[Intent]:
        if self.task.tool != tool:
            yield self.press(tool, phase, target, correction)

    def _click_node(self, idx: int, phase: str, target: int, correction: bool = False) -> Intent:
        t = self.task
        x, y = t.ann.nodes[idx]
        return self.place(x - t.ox, y - t.oy, phase, target, correction)

    # -- nodes ------------------------------------------------------------------------------------
    def _place_nodes(self, tile: tuple[int, int]) -> Iterator[Intent]:
        t, p = self.task, self.persona
        todo = sorted((k for k in range(len(t.nodes)) if k not in self.placed and self._visible(k)),
                      key=lambda k: (t.nodes[k][1] // 20, t.nodes[k][0]))
        for k in todo:
            if k in self.overlooked:
                # A fresh look from another region: the missed junction is found.
                if self.overlooked[k] != tile and self.chance(p.notice_rate):
                    yield from self._found(k)
                continue
            if self.chance(p.miss_rate):
                self.overlooked[k] = tile
                continue
            yield from self._select("NODE")
            yield from self._place_node(k)

    def _place_node(self, k: int, phase: str = "place", correction: bool = False) -> Iterator[Intent]:
        t, p = self.task, self.persona
        x, y = t.nodes[k]
        peek = None
        if not self._visible(k, 20) and self.chance(p.peek_rate):
            peek = self._peek_label(x, y)
        if peek:  # near the border: pans to see the junction's surroundings before placing
            yield self.press(peek, "inspect", k, correction)
        if not correction and self.chance(p.offnode_rate):
            yield from self._offnode(k)
        else:
            yield self.place(x - t.ox, y - t.oy, phase, k, correction)
        self.placed[k] = len(t.ann.nodes) - 1
        if peek:
            yield self.press(BACK[peek], "navigate", k, correction)

    def _peek_label(self, x: float, y: float) -> str | None:
        """A pan that brings (x, y), close to the window's border, further inside it."""
        t, step, m = self.task, self.task.params.pan_step, 20
        if x < t.ox + m and t.ox - step >= 0:
            return "LEFT"
        if x > t.ox + t.view - 1 - m and t.ox + step <= t.max_x:
            return "RIGHT"
        if y < t.oy + m and t.oy - step >= 0:
            return "UP"
        if y > t.oy + t.view - 1 - m and t.oy + step <= t.max_y:
            return "DOWN"
        return None

    def _offnode(self, k: int) -> Iterator[Intent]:
        """Places node k on the road 4-6 px from the junction; usually noticed and undone."""
        t, p = self.task, self.persona
        x, y = t.nodes[k]
        wx, wy = x + 5.0, y
        dist = float(self.rng.uniform(4.5, 6.0))
        for b in t.neighbours[k]:  # along a road that leaves the junction into the window
            road = t.edge_set[(min(k, b), max(k, b))]
            path = t.paths[road] if t.edges[road][0] == k else t.paths[road][::-1]
            i = int(np.argmin(np.abs(np.hypot(*(path - t.nodes[k]).T) - dist)))
            wx, wy = path[i]
            if self._in_view(wx, wy, 1):
                break
        yield self.place(wx - t.ox, wy - t.oy, "place", k, sigma=0.0)
        if self.chance(p.notice_rate):
            yield self.press("UNDO", "correct", k, True)
            yield self.place(x - t.ox, y - t.oy, "correct", k, True)

    def _found(self, m: int) -> Iterator[Intent]:
        """A missed junction is found: NODE, place it, back to the tool in use."""
        t = self.task
        tool = t.tool
        yield from self._select("NODE", "correct", m, True)
        yield from self._pan_to_see(*t.nodes[m], "correct", m, True)
        yield self.place(t.nodes[m][0] - t.ox, t.nodes[m][1] - t.oy, "correct", m, True)
        self.placed[m] = len(t.ann.nodes) - 1
        del self.overlooked[m]
        if tool == "EDGE":
            yield from self._select("EDGE", "correct", m, True)

    # -- edges ------------------------------------------------------------------------------------
    def _join_edges(self, tile: tuple[int, int], only: int | None = None) -> Iterator[Intent]:
        t, p = self.task, self.persona
        n = len(t.nodes)
        if only is None:
            # Roads from placed junctions that run into a missed one reveal it.
            for m in sorted(self.overlooked):
                if self._visible(m) and any(b in self.placed for b in t.neighbours[m]):
                    yield from self._discover(m)
        late = None  # a wrong edge made but not noticed yet: (road, a, b)
        while True:
            if (t.ox, t.oy) != tile:
                yield from self._goto(tile, "navigate")
            todo = [k for k, (a, b) in enumerate(t.edges)
                    if k not in self.joined and a in self.placed and b in self.placed
                    and (self._visible(a) or self._visible(b)) and (only is None or only in (a, b))]
            # Roads with both ends in view first, then the ones that need panning.
            todo.sort(key=lambda k: (not (self._visible(t.edges[k][0]) and self._visible(t.edges[k][1])),
                                     t.nodes[t.edges[k][0]][1] + t.nodes[t.edges[k][1]][1]))
            if late is not None and (not todo or not all(self._visible(j) for j in t.edges[todo[0]])):
                # Noticed before moving on: the last edge does not follow a road.
                yield self.press("UNDO", "correct", n + late[0], True)
                yield from self._redo(*late)
                late = None
            if not todo:
                return
            k = todo[0]
            a, b = t.edges[k]
            if not self._visible(a):
                a, b = b, a
            yield from self._select("EDGE")
            target = n + k
            yield self._click_node(self.placed[a], "place", target)
            if not self._visible(b):
                yield from self._pan_to_see(*t.nodes[b], "navigate", target)
                yield self._click_node(self.placed[b], "place", target)
            elif late is not None:
                # This one is right; looking at it, the previous wrong edge is noticed.
                yield self._click_node(self.placed[b], "place", target)
                yield self.press("UNDO", "correct", target, True)
                yield self.press("UNDO", "correct", n + late[0], True)
                yield from self._redo(*late)
                yield from self._redo(k, a, b)
                late = None
            else:
                decoys = self._decoys(a, b)
                if decoys and self.chance(p.wrong_edge_rate):
                    yield self._click_node(decoys[0], "place", target)
                    if self.chance(p.notice_rate):
                        if self.chance(p.late_notice_rate):
                            late = (k, a, b)
                        else:
                            yield self.press("UNDO", "correct", target, True)
                            yield from self._redo(k, a, b)
                    else:
                        yield self._click_node(self.placed[a], "place", target)
                        yield self._click_node(self.placed[b], "place", target)
                else:
                    yield self._click_node(self.placed[b], "place", target)
            self.joined.add(k)

    def _redo(self, k: int, a: int, b: int) -> Iterator[Intent]:
        target = len(self.task.nodes) + k
        yield self._click_node(self.placed[a], "correct", target, True)
        yield self._click_node(self.placed[b], "correct", target, True)

    def _decoys(self, a: int, b: int) -> list[int]:
        """Placed nodes in view that a slip could join to a instead of b, nearest to b first."""
        t = self.task
        pa = self.placed[a]
        linked = {j if i == pa else i for i, j in t.ann.edges if pa in (i, j)}
        truth = {idx: k for k, idx in self.placed.items()}
        out = []
        for idx, (x, y) in enumerate(t.ann.nodes):
            if idx in (pa, self.placed[b]) or idx in linked or not self._in_view(x, y, self.MARGIN):
                continue
            g = truth.get(idx)
            if g is not None and (min(a, g), max(a, g)) in t.edge_set:
                continue
            out.append((math.hypot(x - t.nodes[b][0], y - t.nodes[b][1]), idx))
        return [idx for _, idx in sorted(out)]

    def _discover(self, m: int) -> Iterator[Intent]:
        """Tracing a road into missed junction m: maybe joins past it first, then finds it."""
        t, p = self.task, self.persona
        nb = [b for b in t.neighbours[m] if b in self.placed and self._visible(b)]
        pairs = [(a, c) for i, a in enumerate(nb) for c in nb[i + 1:]
                 if (min(a, c), max(a, c)) not in t.edge_set
                 and (min(self.placed[a], self.placed[c]), max(self.placed[a], self.placed[c]))
                 not in t.ann.edges]
        noticed = False
        if pairs and self.chance(p.shortcut_rate):
            a, c = pairs[int(self.rng.integers(len(pairs)))]
            yield from self._select("EDGE")
            yield self._click_node(self.placed[a], "place", m)
            yield self._click_node(self.placed[c], "place", m)
            if self.chance(p.notice_rate):
                yield self.press("UNDO", "correct", m, True)
                noticed = True
        if noticed or self.chance(p.notice_rate):
            yield from self._found(m)
