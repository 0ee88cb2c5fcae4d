"""The real-format input of ``annobc study real``: files in the formats a lab exports, made here.

No real dataset ships with annobc and none can be fetched where the study runs, so the study
synthesises one, deterministically from a seed, and writes it to disk in the real format with the
libraries those formats come from (tifffile; Pillow for DeepLabCut's PNG frames). From there on it
is handled as a lab's own data would be: imported by :mod:`annobc.importers` (the code path of
``annobc import``), generated over, trained on and evaluated. The synthesis never calls a task's
generator or renderer, so the images are not the synthetic tasks' own pictures:

- ``neuron``: an EM-like stack (uint8 TIFF, Z, Y, X: tiled cytoplasm with dark membranes, section
  to section brightness changes, noise) through which neurites run as tubes (a light interior in a
  dark membrane ring, radius varying along them), half of the traced ones in pairs whose membranes
  touch once; each traced neurite an SWC skeleton in nanometres (40 nm sections, 8 nm pixels), some
  with a side branch; untraced neurites in the stack as distractors. Imported with
  ``--voxel-size 40,8,8`` and ``--max-slices`` the instance length.
- ``tracks``: a Cell Tracking Challenge folder (``01/t000.tif``..., ``01_GT/TRA/man_track000.tif``...,
  ``man_track.txt``): nuclei (textured, uint16 raw frames, Poisson-like noise) that drift, keep
  apart, divide, and enter the movie at staggered frames, so that every one of the ``instances``
  lineage roots makes an instance.
- ``pose``: DeepLabCut ``labeled-data`` folders (PNG frames, ``CollectedData_lab.csv``): a walking
  quadruped drawn from ellipses (body, head, ears, tail, four legs with paws in a trot) on a
  textured floor, seen from above, eight body parts labelled (a mapping file ignores the ears);
  ceil(``instances`` / 5) videos of 5 x ``length`` frames each.

Each ``write_*(folder, instances, length, seed)`` writes the files and says what they are;
:func:`write_input` hashes them; :func:`import_input` imports a written input;
:func:`subset_view` narrows an import folder's train split to some of its instances.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np

SOURCES = ("neuron", "tracks", "pose")
TASK_OF = {"neuron": "neuron_tracking", "tracks": "cell_lineage_tracking", "pose": "animal_limb_tracking"}
# How the neuron input's skeletons are written: physical units, as tracing tools export them.
VOXEL_NM = (40.0, 8.0, 8.0)  # z (section thickness), y, x


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Unit-variance noise smoothed over about ``scale`` pixels (a Gaussian filter in Fourier
    space; numpy only)."""
    h, w = shape
    f = np.fft.rfft2(rng.standard_normal((h, w)))
    ky = np.fft.fftfreq(h)[:, None]
    kx = np.fft.rfftfreq(w)[None, :]
    f *= np.exp(-2 * (math.pi * scale) ** 2 * (kx ** 2 + ky ** 2))
    out = np.fft.irfft2(f, s=(h, w))
    return out / (out.std() + 1e-9)


def _wander(rng: np.random.Generator, n: int, amplitude: float, periods: tuple[float, float]) -> np.ndarray:
    """A smooth 1-D curve over ``n`` steps: two sinusoids of random period and phase."""
    t = np.arange(n, dtype=np.float64)
    out = np.zeros(n)
    for _ in range(2):
        period = rng.uniform(*periods)
        amp = rng.uniform(0.4, 1.0) * amplitude
        out += amp * np.sin(2 * math.pi * t / period + rng.uniform(0, 2 * math.pi))
    return out


# -- neuron: an EM-like stack and SWC skeletons ------------------------------------------------------
def neuron_paths(rng: np.random.Generator, items: int, slices: int) -> tuple[list, list, tuple[int, int]]:
    """The traced neurites (``items``: (x, y, radius) per slice each, in pixels) and the untraced
    ones, and the stack's (height, width). Traced neurites sit in a grid of 72-pixel cells; every
    second one is the partner of the one before it, running beside it and touching it (membranes
    0.3 px apart) at one slice."""
    cols = max(1, math.ceil(math.sqrt(items * 1.25)))
    rows = math.ceil(items / cols)
    cell, pad = 72, 60  # pad: a 112-pixel crop around a neurite stays inside the stack
    H, W = rows * cell + 2 * pad, cols * cell + 2 * pad
    traced = []
    for i in range(items):
        r = np.clip(3.0 + 0.5 * _wander(rng, slices, 1.0, (20, 60)) + rng.uniform(-0.5, 0.5), 2.2, 4.5)
        if i % 2 == 1:  # a partner of neurite i - 1: beside it, touching once, then apart
            tx, ty, tr = traced[-1].T
            touch = int(rng.integers(4, max(5, slices - 6)))
            z = np.arange(slices, dtype=np.float64)
            gap = 0.3 + np.minimum(0.2 * (z - touch) ** 2, 9.0)
            ang = rng.uniform(0, 2 * math.pi) + 0.15 * np.sin(z / 7.0)
            d = tr + r + gap
            traced.append(np.column_stack([tx + d * np.cos(ang), ty + d * np.sin(ang), r]))
            continue
        gy, gx = divmod(i, cols)
        cx, cy = pad + (gx + 0.5) * cell, pad + (gy + 0.5) * cell
        x = cx + _wander(rng, slices, 9.0, (25, 80)) + rng.uniform(-6, 6)
        y = cy + _wander(rng, slices, 9.0, (25, 80)) + rng.uniform(-6, 6)
        traced.append(np.column_stack([x, y, r]))
    untraced = []
    for _ in range(int(1.5 * items)):
        x = rng.uniform(8, W - 8) + _wander(rng, slices, 14.0, (20, 70))
        y = rng.uniform(8, H - 8) + _wander(rng, slices, 14.0, (20, 70))
        r = np.clip(2.8 + 0.6 * _wander(rng, slices, 1.0, (15, 50)), 1.8, 5.0)
        untraced.append(np.column_stack([x, y, r]))
    return traced, untraced, (H, W)


def neuron_stack(rng: np.random.Generator, traced: list, untraced: list, shape: tuple[int, int],
                 slices: int) -> np.ndarray:
    """The EM-like uint8 stack (Z, Y, X)."""
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    # Neuropil: a smooth field thresholded into cell-like domains whose borders are dark, drifting
    # slowly from section to section; a second field for texture.
    base_a, base_b = _smooth_field(rng, (H, W), 3.5), _smooth_field(rng, (H, W), 3.5)
    texture = _smooth_field(rng, (H, W), 1.2)
    vol = np.empty((slices, H, W), np.float32)
    for z in range(slices):
        t = z / max(1, slices - 1)
        field = math.cos(t * 1.3) * base_a + math.sin(t * 1.3) * base_b
        border = np.exp(-(field / 0.12) ** 2)  # near the field's zero crossings: membranes
        img = 150 + 12 * texture - 70 * border
        # Untraced neurites first, the traced ones over them: a traced target is never hidden.
        for path in untraced + traced:
            x, y, r = path[z]
            x0, x1 = int(max(0, x - r - 3)), int(min(W, x + r + 4))
            y0, y1 = int(max(0, y - r - 3)), int(min(H, y + r + 4))
            if x1 <= x0 or y1 <= y0:
                continue
            d = np.hypot(xx[y0:y1, x0:x1] - x, yy[y0:y1, x0:x1] - y)
            patch = img[y0:y1, x0:x1]
            inside = d < r - 0.6
            patch[inside] = 185 + 6 * texture[y0:y1, x0:x1][inside]
            ring = np.abs(d - r) < 0.9
            patch[ring] = 55
        img *= np.float32(1 + 0.04 * rng.standard_normal())  # section-to-section brightness
        img += rng.normal(0, 9, (H, W)).astype(np.float32)
        vol[z] = img
    return np.clip(np.round(vol), 0, 255).astype(np.uint8)


def write_swc(path: Path, xyr: np.ndarray, rng: np.random.Generator, branch: bool) -> None:
    """One neurite as SWC in nanometres (x, y: 8 nm pixels; z: 40 nm sections), a sample per
    section, type 3 (dendrite); with ``branch``, a 4-sample side branch leaving it mid-stack."""
    vz, vy, vx = VOXEL_NM
    lines = ["# neurite traced in a synthetic EM stack (annobc study real); units nm",
             "# n T x y z R P"]
    for i, (x, y, r) in enumerate(xyr):
        lines.append(f"{i + 1} 3 {x * vx:.2f} {y * vy:.2f} {i * vz:.2f} {r * vx:.2f} {i if i else -1}")
    if branch:
        at = int(rng.integers(len(xyr) // 3, 2 * len(xyr) // 3))
        x, y, _ = xyr[at]
        ang = rng.uniform(0, 2 * math.pi)
        parent, n = at + 1, len(xyr)
        for k in range(1, 5):  # flat in z: a side branch the longest path leaves out
            n += 1
            px, py = x + 3 * k * math.cos(ang), y + 3 * k * math.sin(ang)
            lines.append(f"{n} 3 {px * vx:.2f} {py * vy:.2f} {at * vz:.2f} {1.2 * vx:.2f} {parent}")
            parent = n
    path.write_text("\n".join(lines) + "\n")


def write_neuron(folder: Path, instances: int, length: int, seed: int) -> dict:
    """ceil(``instances`` / 3) traced neurites through a stack of 3 x ``length`` sections (each
    neurite makes three instances of ``length`` slices): ``stack.tif`` and
    ``skeletons/neurite_NNN.swc``."""
    import tifffile

    rng = np.random.default_rng([seed, 0x4E55])
    items = max(1, math.ceil(instances / 3))
    slices = 3 * int(length)
    traced, untraced, shape = neuron_paths(rng, items, slices)
    vol = neuron_stack(rng, traced, untraced, shape, slices)
    folder.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(folder / "stack.tif", vol, photometric="minisblack")
    (folder / "skeletons").mkdir(exist_ok=True)
    swcs = []
    for i, xyr in enumerate(traced):
        p = folder / "skeletons" / f"neurite_{i:03d}.swc"
        write_swc(p, xyr, rng, branch=i % 3 == 0)
        swcs.append(p)
    return {"volume": folder / "stack.tif", "skeletons": swcs,
            "describe": f"an EM-like uint8 TIFF stack {list(vol.shape)} (Z, Y, X) with {items} traced "
                        f"neurites (SWC in nm; {items // 2} touching pairs) and {len(untraced)} "
                        f"untraced ones"}


# -- tracks: a Cell Tracking Challenge folder --------------------------------------------------------
def track_movie(rng: np.random.Generator, roots: int, length: int):
    """Nuclei over a movie: ``roots`` lineages entering at staggered frames, each on screen for
    ``length`` to 1.5 x ``length`` frames (then it leaves: its tracks end without children), its
    nuclei dividing every ``length`` / 3 to 1.5 x ``length`` frames, all drifting with a repulsion
    that keeps them apart. Returns (frames T, side, tracks: label -> [begin, end, parent],
    positions: label -> {t: (x, y, radius)})."""
    crowd = 8  # lineages on screen at once, about
    T = int(length) + int(math.ceil(roots * 1.25 * length / crowd))
    side = int(34 * math.sqrt(2 * crowd)) + 60
    starts = sorted(int(v) for v in rng.integers(0, T - length + 1, roots))
    tracks: dict[int, list[int]] = {}
    pos: dict[int, dict[int, tuple[float, float, float]]] = {}
    live: dict[int, dict] = {}
    label = 0

    def add(t, p, v, r, r0, leave, parent):
        nonlocal label
        label += 1
        live[label] = {"p": np.asarray(p, float), "v": np.asarray(v, float), "r": r, "r0": r0,
                       "age": 0, "life": int(rng.integers(max(2, length // 3), int(1.5 * length) + 1)),
                       "leave": leave}
        tracks[label] = [t, t, parent]
        pos[label] = {}

    for t in range(T):
        while starts and starts[0] <= t:
            starts.pop(0)
            tries = rng.uniform(30, side - 30, (12, 2))  # enter where the crowd is thinnest
            gaps = [min((np.hypot(*(q - s["p"])) for s in live.values()), default=1e9) for q in tries]
            r0 = float(rng.uniform(6.5, 8.5))
            add(t, tries[int(np.argmax(gaps))], rng.normal(0, 0.6, 2), r0, r0,
                min(T - 1, t + int(rng.integers(length, int(1.5 * length) + 1))), 0)
        for L, s in live.items():
            force = np.zeros(2)
            for M, o in live.items():
                d = s["p"] - o["p"]
                n = float(np.hypot(*d))
                if M != L and n < 26:
                    force += d / (n + 1e-6) * (26 - n) * 0.15
            s["v"] = 0.85 * s["v"] + rng.normal(0, 0.25, 2) + force
            s["p"] = np.clip(s["p"] + s["v"], s["r"] + 4, side - s["r"] - 4)
            s["r"] = min(s["r0"], s["r"] * 1.03)  # daughters grow back to their mother's size
            pos[L][t] = (float(s["p"][0]), float(s["p"][1]), float(s["r"]))
            tracks[L][1] = t
            s["age"] += 1
        for L, s in list(live.items()):
            if t >= s["leave"]:  # the lineage leaves the field of view after this frame
                del live[L]
            elif s["age"] >= s["life"]:  # divides: two daughters on the next frame
                del live[L]
                ang = rng.uniform(0, 2 * math.pi)
                axis = np.array([math.cos(ang), math.sin(ang)])
                for sign in (1.0, -1.0):
                    add(t + 1, s["p"] + sign * 0.6 * s["r"] * axis, sign * 0.8 * axis, 0.8 * s["r"],
                        s["r0"], s["leave"], L)
    return T, side, tracks, pos


def write_tracks(folder: Path, instances: int, length: int, seed: int) -> dict:
    """A CTC sequence ``01`` (raw uint16 frames) with its ground truth ``01_GT/TRA``: ``instances``
    lineage roots, each making one instance of up to ``length`` frames."""
    import tifffile

    rng = np.random.default_rng([seed, 0x7C7C])
    T, side, tracks, pos = track_movie(rng, instances, length)
    raw_dir, tra = folder / "01", folder / "01_GT" / "TRA"
    raw_dir.mkdir(parents=True, exist_ok=True)
    tra.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    background = 200 + 30 * _smooth_field(rng, (side, side), 20.0)
    for t in range(T):
        lab = np.zeros((side, side), np.uint16)
        img = background.copy()
        for L in sorted(pos):
            if t not in pos[L]:
                continue
            x, y, r = pos[L][t]
            x0, x1 = int(max(0, x - r - 2)), int(min(side, x + r + 3))
            y0, y1 = int(max(0, y - r - 2)), int(min(side, y + r + 3))
            d = np.hypot(xx[y0:y1, x0:x1] - x, (yy[y0:y1, x0:x1] - y) * 1.12)
            m = d < r
            lab[y0:y1, x0:x1][m] = L
            shade = 700 + 150 * np.cos(xx[y0:y1, x0:x1] / 2.3 + L) * np.sin(yy[y0:y1, x0:x1] / 3.1)
            img[y0:y1, x0:x1][m] += (shade * (1 - 0.35 * (d / r) ** 2))[m]
        img = rng.poisson(np.clip(img, 1, None) / 4.0) * 4.0  # shot noise
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", lab)
        tifffile.imwrite(raw_dir / f"t{t:03d}.tif", np.clip(img, 0, 65535).astype(np.uint16))
    lines = [f"{L} {b} {e} {p}\n" for L, (b, e, p) in sorted(tracks.items())]  # CTC's L B E P
    (tra / "man_track.txt").write_text("".join(lines))
    n_roots = sum(1 for _, _, p in tracks.values() if p == 0)
    return {"tracks": tra, "images": raw_dir,
            "describe": f"a Cell Tracking Challenge movie of {T} frames {side}x{side} (uint16) with "
                        f"{len(tracks)} tracks in {n_roots} lineages"}


# -- pose: DeepLabCut labeled-data folders -----------------------------------------------------------
POSE_PARTS = ("snout", "ear_left", "ear_right", "tailbase", "paw_fl", "paw_fr", "paw_hl", "paw_hr")
# The mapping file the import uses: these names are not all DeepLabCut's usual ones (ears too).
POSE_MAPPING = {"keypoints": {"NOSE": "snout", "TAIL": "tailbase", "FL": "paw_fl", "FR": "paw_fr",
                              "HL": "paw_hl", "HR": "paw_hr"}, "ignore": ["ear_left", "ear_right"]}


def _ellipse(img, cx, cy, a, b, ang, colour, xx, yy) -> None:
    c, s = math.cos(ang), math.sin(ang)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    img[(u / a) ** 2 + (v / b) ** 2 <= 1.0] = colour


def animal_frame(rng, floor, x, y, h, phase, body, xx, yy):
    """One top-view frame of the quadruped at (x, y) heading ``h`` (radians, image coordinates,
    y down) in stride ``phase``; returns the image and the body parts' (x, y)."""
    img = floor.copy()
    fwd = np.array([math.cos(h), math.sin(h)])
    left = np.array([math.sin(h), -math.cos(h)])  # the animal's own left, seen from above
    L, Wd = body
    c = np.array([x, y])
    parts = {"snout": c + fwd * (0.5 * L + 0.42 * L), "tailbase": c - fwd * 0.5 * L}
    swing = 0.16 * L * math.sin(phase)  # a trot: diagonal pairs swing together
    for name, along, side, sgn in (("paw_fl", 0.33, 1, 1), ("paw_fr", 0.33, -1, -1),
                                   ("paw_hl", -0.33, 1, -1), ("paw_hr", -0.33, -1, 1)):
        parts[name] = c + fwd * (along * L + sgn * swing) + left * side * (0.5 * Wd + 0.18 * L)
    head = c + fwd * (0.5 * L + 0.2 * L)
    parts["ear_left"] = head + left * 0.22 * L - fwd * 0.05 * L
    parts["ear_right"] = head - left * 0.22 * L - fwd * 0.05 * L
    tail_end = parts["tailbase"] - fwd * 0.7 * L + left * 0.25 * L * math.sin(phase * 0.5)
    for k in np.linspace(0, 1, 24):  # the tail: a line of small discs
        q = parts["tailbase"] * (1 - k) + tail_end * k
        _ellipse(img, q[0], q[1], 1.6, 1.6, 0, (120, 95, 85), xx, yy)
    for name in ("paw_fl", "paw_fr", "paw_hl", "paw_hr"):  # legs under the body, paws at the end
        hip = c + fwd * (0.3 * L if "f" == name[4] else -0.3 * L)
        mid = (hip + parts[name]) / 2
        seg = parts[name] - hip
        _ellipse(img, mid[0], mid[1], max(2.0, np.hypot(*seg) / 2), 2.2, math.atan2(seg[1], seg[0]),
                 (150, 120, 100), xx, yy)
        _ellipse(img, parts[name][0], parts[name][1], 2.8, 2.8, 0, (225, 170, 160), xx, yy)
    _ellipse(img, x, y, 0.5 * L, 0.5 * Wd, h, (170, 140, 115), xx, yy)
    _ellipse(img, head[0], head[1], 0.25 * L, 0.2 * L, h, (180, 150, 125), xx, yy)
    for ear in ("ear_left", "ear_right"):
        _ellipse(img, parts[ear][0], parts[ear][1], 2.6, 2.0, h, (200, 140, 140), xx, yy)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    return img, parts


def write_pose(folder: Path, instances: int, length: int, seed: int) -> dict:
    """``labeled-data/<video>/`` folders of PNG frames and ``CollectedData_lab.csv`` (DeepLabCut's
    three header rows, one path column): ceil(``instances`` / 5) videos of 5 x ``length`` labelled
    frames each, a walking animal per video; and ``mapping.yaml`` for the import."""
    from PIL import Image

    rng = np.random.default_rng([seed, 0xD1C0])
    H, W = 280, 300  # room for the importer's crop (about 2.8 body lengths) around the walk
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    videos = max(1, math.ceil(instances / 5))
    root = folder / "labeled-data"
    for v in range(videos):
        vid = root / f"video{v:03d}"
        vid.mkdir(parents=True, exist_ok=True)
        floor = np.stack([70 + 18 * _smooth_field(rng, (H, W), 3.0)] * 3, -1) * np.array([1.0, 0.95, 0.85])
        body = (float(rng.uniform(44, 56)), float(rng.uniform(20, 26)))
        x, y, h = W / 2 + rng.uniform(-20, 20), H / 2 + rng.uniform(-15, 15), rng.uniform(0, 2 * math.pi)
        phase = rng.uniform(0, 2 * math.pi)
        lines = ["scorer" + ",lab" * 2 * len(POSE_PARTS),
                 "bodyparts" + "".join(f",{n},{n}" for n in POSE_PARTS),
                 "coords" + ",x,y" * len(POSE_PARTS)]
        for f in range(5 * int(length)):
            # a smooth walk, turning back towards the centre near the border
            to_centre = math.atan2(H / 2 - y, W / 2 - x)
            pull = 0.25 if math.hypot(W / 2 - x, H / 2 - y) > 45 else 0.0
            h += rng.normal(0, 0.12) + pull * math.sin(to_centre - h)
            x, y = x + 2.5 * math.cos(h), y + 2.5 * math.sin(h)
            phase += 0.9
            img, parts = animal_frame(rng, floor, x, y, h, phase, body, xx, yy)
            name = f"img{f:04d}.png"
            Image.fromarray(img).save(vid / name)
            lines.append(f"labeled-data/{vid.name}/{name}" + "".join(
                f",{parts[n][0]:.2f},{parts[n][1]:.2f}" for n in POSE_PARTS))
        (vid / "CollectedData_lab.csv").write_text("\n".join(lines) + "\n")
    (folder / "mapping.yaml").write_text(json.dumps(POSE_MAPPING, indent=2) + "\n")  # JSON is YAML
    return {"labels": root, "mapping": folder / "mapping.yaml",
            "describe": f"{videos} DeepLabCut labeled-data videos of {5 * int(length)} PNG frames "
                        f"{W}x{H} each: a walking quadruped, seen from above, eight body parts "
                        f"labelled (two ignored by the mapping)"}


# -- writing and importing ---------------------------------------------------------------------------
WRITERS = {"neuron": write_neuron, "tracks": write_tracks, "pose": write_pose}


def write_input(source: str, folder: Path, instances: int, length: int, seed: int) -> dict:
    """Write the ``source`` input into ``folder`` (replaced when it exists: a killed write is
    redone from scratch, the same bytes); returns what was written, each file with its sha256."""
    from annobc.importers.common import sha256_of

    if source not in WRITERS:
        raise ValueError(f"unknown source {source!r}; known: {', '.join(SOURCES)}")
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    made = WRITERS[source](folder, int(instances), int(length), int(seed))
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {"source": source, "folder": str(folder), "describe": made["describe"],
            "args": {k: str(v) if isinstance(v, Path) else [str(x) for x in v] if isinstance(v, list) else v
                     for k, v in made.items() if k != "describe"},
            "files": [{"path": str(p.relative_to(folder)), "sha256": sha256_of(p)} for p in files]}


def import_input(source: str, written: dict, out: Path, length: int, split_seed: int) -> dict:
    """Import a written input into the import folder ``out`` with :mod:`annobc.importers` (as
    ``annobc import`` does; ``out`` replaced where a kill left it); returns the import card."""
    from annobc.importers import import_neuron, import_pose, import_tracks

    a = written["args"]
    if source == "neuron":
        return import_neuron(a["volume"], a["skeletons"], out, voxel_size=VOXEL_NM,
                             max_slices=int(length), min_slices=min(8, int(length)),
                             split_seed=split_seed, force=True)
    if source == "tracks":
        return import_tracks(a["tracks"], out, images=a["images"], max_frames=int(length),
                             min_frames=min(8, int(length)), split_seed=split_seed, force=True)
    return import_pose(a["labels"], out, mapping=a["mapping"], frames_per_instance=int(length),
                       split_seed=split_seed, force=True)


def subset_view(src: Path, dst: Path, train: list[str]) -> dict:
    """An import folder ``dst`` that is ``src`` with its train split narrowed to ``train`` (the
    same instance files, linked or copied; val and test as they are), so that the train seeds of
    a dataset generated over it play those instances only. Written beside and renamed in place."""
    card = json.loads((src / "import.json").read_text())
    unknown = sorted(set(train) - set(card["splits"]["train"]))
    if unknown:
        raise ValueError(f"{src}: {unknown[:3]} are not train instances")
    keep = set(train) | set(card["splits"]["val"]) | set(card["splits"]["test"])
    card["splits"] = {**card["splits"], "train": sorted(train)}
    card["instances"] = [i for i in card["instances"] if i["name"] in keep]
    card["subset_of"] = {"path": str(src.resolve()), "import_json_sha256": _sha(src / "import.json"),
                         "train": sorted(train)}
    tmp = dst.parent / f".{dst.name}.view-tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "instances").mkdir(parents=True)
    for i in card["instances"]:
        a, b = src / i["file"], tmp / i["file"]
        try:
            os.link(a, b)
        except OSError:
            shutil.copyfile(a, b)
    (tmp / "import.json").write_text(json.dumps(card, indent=2) + "\n")
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
    return card


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
