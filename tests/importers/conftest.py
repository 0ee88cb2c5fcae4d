"""Small files in each importer's format, written with the libraries the formats come from
(tifffile, zarr, pandas, Pillow): a stack with two traced neurites and their SWC skeletons, a
DeepLabCut labeled-data folder of a (generated) animal, a Cell Tracking Challenge folder of
moving and dividing nuclei."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

tifffile = pytest.importorskip("tifffile")

# -- neuron: a stack with a target neurite and a neighbour that touches it once ------------------
NZ, NY, NX = 40, 100, 130
TOUCH_Z = 17  # the slice where the neighbour's membrane meets the target's
R_TARGET, R_NEIGHBOUR = 3.0, 2.5


def neuron_paths() -> tuple[np.ndarray, np.ndarray]:
    """(x, y, z) of the target and of the neighbour on every slice (voxel coordinates)."""
    z = np.arange(NZ, dtype=float)
    target = np.column_stack([62 + 14 * np.sin(z / 9.0), 48 + 9 * np.cos(z / 13.0), z])
    normal = np.array([0.6, 0.8])
    gap = 0.3 + np.minimum(0.25 * (z - TOUCH_Z) ** 2, 10.0)  # 0.3 px at the touch, then apart
    off = (R_TARGET + R_NEIGHBOUR + gap)[:, None] * normal[None, :]
    neighbour = np.column_stack([target[:, :2] + off, z])
    return target, neighbour


def write_swc(path: Path, xyz: np.ndarray, radius: float, branch_at: int | None = None) -> Path:
    lines = ["# a synthetic neurite: n T x y z R P"]
    for i, (x, y, z) in enumerate(xyz):
        lines.append(f"{i + 1} 3 {x:.4f} {y:.4f} {z:.4f} {radius} {i if i else -1}")
    if branch_at is not None:  # a short side branch, so the tree has a branch point
        x, y, z = xyz[branch_at]
        n = len(xyz)
        lines += [f"{n + 1} 3 {x - 3:.4f} {y + 2:.4f} {z:.4f} 1.0 {branch_at + 1}",
                  f"{n + 2} 3 {x - 6:.4f} {y + 4:.4f} {z - 1:.4f} 1.0 {n + 1}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def neuron_volume() -> np.ndarray:
    rng = np.random.default_rng(5)
    vol = rng.normal(1000, 40, (NZ, NY, NX))
    yy, xx = np.mgrid[0:NY, 0:NX]
    for path, r in zip(neuron_paths(), (R_TARGET, R_NEIGHBOUR)):
        for z in range(NZ):
            d = np.hypot(xx - path[z, 0], yy - path[z, 1])
            vol[z] += 500 * (d < r - 0.5) - 400 * (np.abs(d - r) < 0.8)
    return vol.astype(np.uint16)


@pytest.fixture
def neuron_files(tmp_path) -> dict:
    vol = neuron_volume()
    tif = tmp_path / "stack.tif"
    tifffile.imwrite(tif, vol)
    target, neighbour = neuron_paths()
    return {"volume": tif, "array": vol,
            "target": write_swc(tmp_path / "target.swc", target, R_TARGET, branch_at=30),
            "neighbour": write_swc(tmp_path / "neighbour.swc", neighbour, R_NEIGHBOUR)}


# -- tracks: a CTC folder --------------------------------------------------------------------------
CT, CH, CW = 16, 120, 140
CTC_TRACKS = {1: (0, 6, 0), 2: (7, CT - 1, 1), 3: (7, CT - 1, 1), 4: (0, CT - 1, 0),
              5: (0, CT - 1, 0)}  # label: (begin, end, parent); 1 divides into 2 and 3 at t = 7


def ctc_centre(label: int, t: int) -> tuple[float, float]:
    if label == 1:
        return 45 + 1.5 * t, 55 + 0.5 * t
    if label == 2:  # the daughter nearer the mother's last position
        return 48 - 0.8 * (t - 7), 61 + 0.5 * (t - 7)
    if label == 3:
        return 63 + 1.2 * (t - 7), 56 - 1.0 * (t - 7)
    if label == 4:  # passes close by the lineage
        return 95 - 1.2 * t, 90 - 1.2 * t
    return 25 + 0.2 * t, 100 - 1.0 * t


def write_ctc(root: Path, tracks: dict | None = None) -> Path:
    tracks = tracks or CTC_TRACKS
    (root / "01").mkdir(parents=True)
    tra = root / "01_GT" / "TRA"
    tra.mkdir(parents=True)
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:CH, 0:CW]
    for t in range(CT):
        lab = np.zeros((CH, CW), np.uint16)
        img = rng.normal(300, 25, (CH, CW))
        for L, (b, e, _) in CTC_TRACKS.items():
            if b <= t <= e:
                x, y = ctc_centre(L, t)
                m = np.hypot(xx - x, (yy - y) * 1.15) < 8.5
                lab[m] = L
                img[m] += 900 + 80 * np.cos(xx[m] / 2.0)
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", lab)
        tifffile.imwrite(root / "01" / f"t{t:03d}.tif", img.astype(np.uint16))
    (tra / "man_track.txt").write_text("".join(f"{L} {b} {e} {p}\n" for L, (b, e, p) in tracks.items()))
    return tra


@pytest.fixture
def ctc_folder(tmp_path) -> Path:
    return write_ctc(tmp_path / "ctc")


# -- pose: a DeepLabCut labeled-data folder ------------------------------------------------------
DLC_PARTS = ("nose", "tail_base", "front_left", "front_right", "hind_left", "hind_right")


def write_dlc(root: Path, parts=DLC_PARTS, extra: tuple[str, ...] = (), seed: int = 3,
              new_index: bool = False) -> Path:
    """labeled-data/mouse1 with PNG frames of a generated animal pasted into a larger image, and
    CollectedData_me.csv (the 3-row header; ``new_index``: the three-column image index)."""
    from PIL import Image

    from annobc.tasks import Session

    vid = root / "labeled-data" / "mouse1"
    vid.mkdir(parents=True)
    t = Session("animal_limb_tracking", seed).task
    names = list(parts) + list(extra)
    idx = ",," if new_index else ""
    lines = ["scorer" + idx + ",me" * 2 * len(names),
             "bodyparts" + idx + "".join(f",{n},{n}" for n in names),
             "coords" + idx + ",x,y" * len(names)]
    truth = []
    for f in range(t.n_frames):
        img = np.full((170, 210, 3), 80, np.uint8)
        ox, oy = 40 + 4 * f, 28 + 2 * f
        img[oy:oy + 112, ox:ox + 112] = t.render_view(f)
        name = f"img{f:04d}.png"
        Image.fromarray(img).save(vid / name)
        pts = [(u + ox, v + oy) for u, v in t.gt[f]] + [(1.0, 1.0)] * len(extra)
        truth.append(pts[:6])
        head = f"labeled-data,mouse1,{name}" if new_index else f"labeled-data/mouse1/{name}"
        lines.append(head + "".join(f",{u:.3f},{v:.3f}" for u, v in pts))
    (vid / "CollectedData_me.csv").write_text("\n".join(lines) + "\n")
    (vid / "truth.json").write_text(json.dumps(truth))
    return vid


@pytest.fixture
def dlc_folder(tmp_path) -> Path:
    return write_dlc(tmp_path / "dlc")
