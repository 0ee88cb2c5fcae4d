"""``annobc import tracks``: a Cell Tracking Challenge folder -> cell_lineage_tracking instances.

The Cell Tracking Challenge (CTC) format, for 2D + time:

    NN/t000.tif, t001.tif, ...            the raw frames
    NN_GT/TRA/man_track000.tif, ...       label images: track L's pixels hold L, background 0
    NN_GT/TRA/man_track.txt               one line per track: ``L B E P`` = label, first frame,
                                          last frame, parent label (0: none)

or a result folder ``NN_RES/mask000.tif, ...`` with ``res_track.txt``. A track ends where its
nucleus divides; its daughters begin on the next frame with ``P`` = its label.

Each lineage root (a track without parent) that lasts ``min_frames`` frames makes one instance,
from the root's first frame: the followed nucleus is the root, then at each division the daughter
nearer the mother's last position (the task's rule), until it leaves the movie, the movie ends or
``max_frames`` frames. The crop is a square around everything the followed nuclei cover, scaled
so that they are about ``cell_radius`` data pixels in radius (smaller where the lineage needs more
room); frames are resampled (area average) and stretched to 8 bits, masks resampled (nearest
pixel) into the task's label masks: a click is inside a nucleus where its mask is.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from annobc.importers.common import (ImportDataError, resample, source_entries, staged_folder,
                                     text_array, to_uint8, write_card, write_instance)
from annobc.tasks.registry import get_task_class

TASK = "cell_lineage_tracking"
TRACK_FILES = {"man_track.txt": "man_track", "res_track.txt": "mask"}  # track file -> mask prefix
MIN_INTERIOR = 1.5  # data pixels from a followed nucleus's click point to its mask's edge


@dataclass
class Track:
    label: int
    begin: int
    end: int
    parent: int
    line: int


def _numbered(folder: Path, prefix: str) -> dict[int, Path]:
    pat = re.compile(rf"^{re.escape(prefix)}(\d+)\.tiff?$", re.IGNORECASE)
    out = {}
    for p in folder.iterdir():
        m = pat.match(p.name)
        if m:
            out[int(m.group(1))] = p
    return dict(sorted(out.items()))


def find_images(tracks_dir: Path) -> Path | None:
    """The raw-frame folder of a CTC ground-truth or result folder: NN for NN_GT/TRA or NN_RES."""
    cands = []
    if tracks_dir.name.upper() == "TRA" and tracks_dir.parent.name.upper().endswith("_GT"):
        cands.append(tracks_dir.parent.parent / tracks_dir.parent.name[:-3])
    if tracks_dir.name.upper().endswith("_RES"):
        cands.append(tracks_dir.parent / tracks_dir.name[:-4])
    for c in cands:
        if c.is_dir() and _numbered(c, "t"):
            return c
    return None


def read_track_file(path: Path) -> dict[int, Track]:
    tracks: dict[int, Track] = {}
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            L, B, E, P = (int(v) for v in parts)
        except ValueError:
            raise ImportDataError(f"{path} line {no}: expected 'L B E P' (four integers: label, "
                                  f"begin frame, end frame, parent), got {line.strip()[:60]!r}") from None
        if L <= 0 or B < 0 or E < B or P < 0:
            raise ImportDataError(f"{path} line {no}: track {L} has label <= 0, frames {B}-{E} or "
                                  f"parent {P} out of order")
        if L in tracks:
            raise ImportDataError(f"{path} line {no}: track {L} appears twice")
        tracks[L] = Track(L, B, E, P, no)
    if not tracks:
        raise ImportDataError(f"{path}: no tracks")
    for t in tracks.values():
        if t.parent and t.parent not in tracks:
            raise ImportDataError(f"{path} line {t.line}: parent {t.parent} of track {t.label} is "
                                  f"not a track")
    return tracks


def _read_2d(path: Path, what: str) -> np.ndarray:
    import tifffile

    try:
        a = tifffile.imread(str(path))
    except Exception as e:  # tifffile's own error types
        raise ImportDataError(f"{path}: not a readable TIFF ({type(e).__name__}: {e})") from None
    a = np.squeeze(a)
    if a.ndim != 2:
        raise ImportDataError(f"{path}: a {what} of shape {a.shape} is not 2D (this importer reads "
                              f"2D + time sequences)")
    return a


def import_tracks(tracks_dir: str | Path, out: str | Path, images: str | Path | None = None,
                  min_frames: int = 8, max_frames: int = 30, cell_radius: float = 5.5,
                  scale: float | None = None, max_instances: int | None = None,
                  split_seed: int = 0, force: bool = False) -> dict:
    """Import the CTC folder ``tracks_dir`` (label TIFFs and their track file) with the raw
    frames in ``images`` (default: found beside it) into the import folder ``out``."""
    tracks_dir = Path(tracks_dir)
    if not tracks_dir.is_dir():
        raise ImportDataError(f"{tracks_dir}: not a folder (a CTC TRA or RES folder)")
    track_file = next((tracks_dir / n for n in TRACK_FILES if (tracks_dir / n).is_file()), None)
    if track_file is None:
        raise ImportDataError(f"{tracks_dir}: no man_track.txt or res_track.txt")
    masks = _numbered(tracks_dir, TRACK_FILES[track_file.name])
    if not masks:
        raise ImportDataError(f"{tracks_dir}: no label images {TRACK_FILES[track_file.name]}NNN.tif "
                              f"beside {track_file.name}")
    img_dir = Path(images) if images else find_images(tracks_dir)
    if img_dir is None or not img_dir.is_dir():
        raise ImportDataError(f"{tracks_dir}: no raw frames (tNNN.tif) found beside it; give "
                              f"--images FOLDER")
    raw = _numbered(img_dir, "t")
    missing = [t for t in masks if t not in raw]
    if missing:
        raise ImportDataError(f"{img_dir}: no raw frame t{missing[0]:03d}.tif for "
                              f"{masks[missing[0]].name}")
    if min_frames < 2 or max_frames < min_frames:
        raise ImportDataError(f"need 2 <= --min-frames <= --max-frames, got {min_frames}, {max_frames}")
    tracks = read_track_file(track_file)
    frames = sorted(masks)
    labels = {t: _read_2d(masks[t], "label image") for t in frames}
    shape = labels[frames[0]].shape
    for t in frames:
        if labels[t].shape != shape:
            raise ImportDataError(f"{masks[t]}: shape {labels[t].shape}, the other label images "
                                  f"are {shape}")
    stats = {t: _label_stats(labels[t]) for t in frames}
    _check_tracks(tracks, track_file, masks, stats)

    S = int(get_task_class(TASK).Params().size)
    children: dict[int, list[int]] = {}
    for tr in tracks.values():
        if tr.parent:
            children.setdefault(tr.parent, []).append(tr.label)
    roots = sorted(L for L, tr in tracks.items() if not tr.parent)
    notes, built = [], []
    for root in roots:
        lineage = _follow(root, tracks, children, stats, max_frames)
        if len(lineage["fol"]) < min_frames:
            notes.append(f"lineage {root}: {len(lineage['fol'])} frames, under --min-frames")
            continue
        built.append(lineage)
        if max_instances and len(built) >= max_instances:
            break
    if not built:
        raise ImportDataError(f"{track_file}: no lineage root lasts --min-frames {min_frames} frames")

    options = {"min_frames": min_frames, "max_frames": max_frames, "cell_radius": cell_radius,
               "scale": scale, "max_instances": max_instances, "grid": S,
               "images": str(img_dir.resolve())}
    used: set[int] = set()
    with staged_folder(out, force) as tmp:
        instances = []
        for lin in built:
            name = f"lineage-{lin['root']:05d}"
            got = _instance(lin, tracks, labels, raw, stats, S, cell_radius, scale, name)
            if isinstance(got, str):
                notes.append(got)
                continue
            arrays, info = got
            used.update(lin["frames"])
            sha = write_instance(tmp / "instances" / f"{name}.npz", arrays)
            instances.append({"name": name, "file": f"instances/{name}.npz", "sha256": sha, **info})
        if not instances:
            raise ImportDataError(f"{track_file}: no lineage could be imported ({notes[-1]})")
        sources = (source_entries([track_file], "tracks")
                   + source_entries([masks[t] for t in frames], "labels")
                   + source_entries([raw[t] for t in sorted(used)], "frames"))
        mapping = {"movie": "the raw frames from the lineage root's first frame on",
                   "outlined nucleus": "the lineage root (a track with parent 0)",
                   "followed nucleus": "at each division (two tracks whose parent is the followed "
                                       "one, starting the frame after it ends) the daughter nearer "
                                       "the mother's last centroid; a single such child continues it",
                   "division frames": "the daughters' first frame",
                   "nuclei": "every label of the label images inside the crop, one nucleus each"}
        card = write_card(tmp, "tracks", TASK, sources, mapping, options, instances, split_seed,
                          notes=notes)
    return card


def _label_stats(lab: np.ndarray) -> dict[int, tuple[float, float, float]]:
    """label -> (area, centroid x, centroid y) in source pixels."""
    flat = lab.ravel().astype(np.int64)
    if flat.min() < 0:
        flat = np.where(flat < 0, 0, flat)
    n = int(flat.max()) + 1
    area = np.bincount(flat, minlength=n)
    ys, xs = np.divmod(np.arange(flat.size), lab.shape[1])
    sx = np.bincount(flat, weights=xs, minlength=n)
    sy = np.bincount(flat, weights=ys, minlength=n)
    return {int(L): (float(area[L]), float(sx[L] / area[L]), float(sy[L] / area[L]))
            for L in np.flatnonzero(area) if L != 0}


def _check_tracks(tracks: dict[int, Track], track_file: Path, masks: dict[int, Path], stats) -> None:
    frames = set(masks)
    for tr in tracks.values():
        for t in range(tr.begin, tr.end + 1):
            if t not in frames:
                raise ImportDataError(f"{track_file} line {tr.line}: track {tr.label} (frames "
                                      f"{tr.begin}-{tr.end}) names frame {t}, which has no label "
                                      f"image")
            if tr.label not in stats[t]:
                raise ImportDataError(f"{track_file} line {tr.line}: track {tr.label} (frames "
                                      f"{tr.begin}-{tr.end}) names label {tr.label}, which is "
                                      f"missing from {masks[t].name}")
    for t in sorted(frames):
        for L in stats[t]:
            tr = tracks.get(L)
            if tr is None:
                raise ImportDataError(f"{masks[t]}: label {L} is not a track in {track_file.name}")
            if not tr.begin <= t <= tr.end:
                raise ImportDataError(f"{masks[t]}: label {L} outside its frames {tr.begin}-"
                                      f"{tr.end} in {track_file.name}")


def _follow(root: int, tracks, children, stats, max_frames: int) -> dict:
    """The followed lineage from ``root``: per frame the followed label, and the division frames
    (relative to the root's first frame)."""
    t0 = tracks[root].begin
    cur, fol, divs = root, [], []
    while True:
        tr = tracks[cur]
        for t in range(tr.begin, tr.end + 1):
            if len(fol) == max_frames:
                break
            fol.append(cur)
        if len(fol) == max_frames:
            break
        kids = sorted(k for k in children.get(cur, []) if tracks[k].begin == tr.end + 1)
        if not kids:
            break
        if len(kids) >= 2:
            _, mx, my = stats[tr.end][cur]
            cur = min(kids, key=lambda k: (np.hypot(stats[tr.end + 1][k][1] - mx,
                                                    stats[tr.end + 1][k][2] - my), k))
            divs.append(tr.end + 1 - t0)
        else:
            cur = kids[0]
    return {"root": root, "t0": t0, "fol": fol, "divs": divs,
            "frames": list(range(t0, t0 + len(fol)))}


def _interior(mask: np.ndarray, y0: int, x0: int, S: int) -> tuple[float, float, float]:
    """The pixel of a mask (a crop at row y0, column x0 of the grid) farthest from its edge (the
    grid's border counts as edge): (u, v, distance); ties go to the pixel nearest the centroid."""
    iy, ix = np.nonzero(mask)
    h, w = mask.shape
    # Background: the crop's non-mask pixels and the ring around it (off the grid or not).
    by, bx = np.nonzero(~np.pad(mask, 1))
    by, bx = by - 1, bx - 1
    d2 = ((iy[:, None] - by[None, :]) ** 2 + (ix[:, None] - bx[None, :]) ** 2).min(1).astype(float)
    # The grid's border: a mask pixel at row r is r + 1 from the row of pixels above the grid.
    gy, gx = iy + y0, ix + x0
    border = np.minimum.reduce([gy + 1, gx + 1, S - gy, S - gx]).astype(float) ** 2
    d2 = np.minimum(d2, border)
    cy, cx = iy.mean(), ix.mean()
    best = np.flatnonzero(d2 >= d2.max() - 1e-9)
    j = best[np.argmin((iy[best] - cy) ** 2 + (ix[best] - cx) ** 2)]
    return float(gx[j]), float(gy[j]), float(np.sqrt(d2[j]))


def _shape(mask: np.ndarray) -> tuple[float, float, float]:
    """(major semi-axis, minor semi-axis, angle) of a mask's second moments."""
    iy, ix = np.nonzero(mask)
    if len(iy) < 2:
        return 0.5, 0.5, 0.0
    cov = np.cov(np.stack([ix, iy]).astype(float)) + np.eye(2) / 12.0
    vals, vecs = np.linalg.eigh(cov)
    a, b = 2.0 * np.sqrt(np.maximum(vals[::-1], 1e-6))
    return float(a), float(b), float(np.arctan2(vecs[1, 1], vecs[0, 1]) % np.pi)


def _instance(lin, tracks, labels, raw, stats, S, cell_radius, scale, name):
    frames, fol = lin["frames"], lin["fol"]
    T = len(frames)
    # Where the followed nuclei are (source pixels): their bounding box over the frames.
    pts, radii = [], []
    for t, L in zip(frames, fol):
        ys, xs = np.nonzero(labels[t] == L)
        pts += [(xs.min(), ys.min()), (xs.max() + 1, ys.max() + 1)]
        radii.append(np.sqrt(stats[t][L][0] / np.pi))
    pts = np.array(pts, float)
    lo, hi = pts.min(0), pts.max(0)
    r_src = float(np.median(radii))
    f = float(scale) if scale else cell_radius / max(r_src, 1e-6)  # data pixels per source pixel
    need = float((hi - lo).max()) + 4 * r_src  # the lineage plus two radii of room each side
    if not scale and need * f > S:
        f = S / need
    side = S / f
    cx, cy = (lo + hi) / 2
    x0, y0 = float(cx - side / 2), float(cy - side / 2)
    data = np.stack([resample(_read_2d(raw[t], "raw frame"), y0, x0, side, S, order=1, fill=None)
                     for t in frames])
    dtype = _read_2d(raw[frames[0]], "raw frame").dtype
    images, how = to_uint8(data, dtype)
    lab = np.stack([resample(labels[t], y0, x0, side, S, order=0, fill=0) for t in frames]
                   ).astype(np.int64)
    present = sorted(set(np.unique(lab).tolist()) - {0})
    root = lin["root"]
    if root not in present:
        return f"lineage {root}: its root does not show on the grid"
    order = [root] + [L for L in present if L != root]
    index = {L: k for k, L in enumerate(order)}
    N = len(order)
    remap = np.zeros(max(order) + 1, np.int32)
    for L, k in index.items():
        remap[L] = k + 1
    grid_labels = remap[lab]
    pos = np.full((N, T, 2), np.nan)
    shape_rows = [[] for _ in range(N)]
    for ti in range(T):
        m = grid_labels[ti]
        for k in (np.unique(m[m > 0]) - 1).tolist():
            ys, xs = np.nonzero(m == k + 1)
            y_lo, y_hi, x_lo, x_hi = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            u, v, d = _interior(m[y_lo:y_hi, x_lo:x_hi] == k + 1, y_lo, x_lo, S)
            pos[k, ti] = (u, v)
            if fol[ti] == order[k] and d < MIN_INTERIOR:
                return (f"lineage {root}: the followed nucleus is under {2 * MIN_INTERIOR:g} data "
                        f"pixels across at frame {frames[ti]} (give --scale, or masks that cover "
                        f"the nuclei)")
            shape_rows[k].append(_shape(m[y_lo:y_hi, x_lo:x_hi] == k + 1))
    fol_idx = np.array([index.get(L, -1) for L in fol], np.int64)
    if (fol_idx < 0).any() or np.isnan(pos[fol_idx, np.arange(T), 0]).any():
        return f"lineage {root}: a followed nucleus leaves the grid"
    shape = np.array([[float(np.median([r[0] for r in rows])), float(np.median([r[1] for r in rows])),
                       rows[0][2]] for rows in shape_rows])
    alive = ~np.isnan(pos[:, :, 0])
    life = np.zeros((N, 3), np.int64)
    kids = [[] for _ in range(N)]
    for k, L in enumerate(order):
        on = np.flatnonzero(alive[k])
        par = tracks[L].parent
        life[k] = (on[0], on[-1], index.get(par, -1))
        if par in index:
            kids[index[par]].append(k)
    width = max(2, max(len(c) for c in kids))
    children = np.full((N, width), -1, np.int64)
    for k, c in enumerate(kids):
        children[k, :len(c)] = sorted(c)
    info = {"root": root, "frames": [frames[0], frames[-1]], "n_frames": T, "nuclei": N,
            "divisions": [frames[0] + d for d in lin["divs"]],
            "crop_xy": [round(x0, 3), round(y0, 3), round(side, 3)], "scale": round(f, 6), **how}
    arrays = {"task": text_array(TASK), "name": text_array(name), "images": images,
              "labels": grid_labels.astype(np.int32), "pos": pos, "shape": shape, "life": life,
              "children": children, "fol": fol_idx, "div_frames": np.array(lin["divs"], np.int64),
              "meta": text_array(json.dumps(info, sort_keys=True))}
    return arrays, info
