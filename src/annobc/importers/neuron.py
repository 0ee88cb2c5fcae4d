"""``annobc import neuron``: a volume and SWC skeletons -> neuron_tracking instances.

Each instance is one path of a skeleton along which z never decreases (see
:mod:`annobc.importers.swc`), cut to at most ``max_slices`` slices:

- its slices are the volume's z planes the path crosses, from the lowest up; slice 0 is where the
  crosshair starts (the path's cross-section there);
- on each slice the target's cross-section is the path's point on that plane (interpolated between
  samples) with the skeleton's radius there (at least ``min_radius`` data pixels);
- the image is a square crop of the volume around the path, shown 1:1 when the path fits the grid
  with ``margin`` pixels to spare, else shrunk to fit (or resampled by ``scale``), as 8-bit grey;
- the other paths of the given skeletons that touch the target (their cross-sections come within
  ``contact_gap`` pixels of the target's, then drift apart) are its neighbours, and those slices
  its contacts, where the annotator may take a wrong turn as it does in generated scenes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from annobc.importers.common import (ImportDataError, resample, source_entries, staged_folder,
                                     text_array, to_grid, to_uint8, write_card, write_instance)
from annobc.importers.swc import Skeleton, longest_path, read_swc, segments, slice_crossings
from annobc.tasks.registry import get_task_class

TASK = "neuron_tracking"
PATH_MODES = ("longest", "segments")


# -- the volume ----------------------------------------------------------------------------------
class Volume:
    """A 3D stack (Z, Y, X) read lazily from a TIFF file (tifffile) or a zarr array, with
    singleton axes (channel, time) dropped."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise ImportDataError(f"{self.path}: no such volume (a TIFF stack or a zarr array)")
        arr = self._open()
        shape = tuple(int(n) for n in arr.shape)
        keep = [i for i, n in enumerate(shape) if n != 1]
        if len(keep) != 3:
            raise ImportDataError(
                f"{self.path}: a volume of shape {shape} has {len(keep)} non-singleton "
                f"dimension(s); need a 3D stack (Z, Y, X) (pick one channel or time point first)")
        self._arr, self._keep, self._ndim = arr, keep, len(shape)
        self.shape = tuple(shape[i] for i in keep)
        self.dtype = np.dtype(arr.dtype)

    def _open(self):
        p = self.path
        if p.is_dir() or p.suffix.lower() in (".zarr", ".zr"):
            import zarr

            try:
                node = zarr.open(str(p), mode="r")
            except Exception as e:  # zarr raises several kinds for a folder that is not a store
                raise ImportDataError(f"{p}: not a zarr array or group ({type(e).__name__}: {e})") from None
            if hasattr(node, "shape"):
                return node
            arrays = sorted(name for name, _ in node.arrays())
            if "0" in arrays:  # OME-Zarr: the full-resolution level
                return node["0"]
            if len(arrays) == 1:
                return node[arrays[0]]
            raise ImportDataError(f"{p}: a zarr group with arrays {arrays}; name one "
                                  f"(e.g. {p}/{arrays[0] if arrays else 'ARRAY'})")
        import tifffile

        try:
            try:
                return tifffile.memmap(str(p), mode="r")  # uncompressed: nothing read yet
            except (ValueError, TypeError, OSError):
                return tifffile.imread(str(p))
        except Exception as e:  # tifffile raises its own error types for a file that is not a TIFF
            raise ImportDataError(f"{p}: not a readable TIFF stack ({type(e).__name__}: {e})") from None

    def __getitem__(self, index: tuple) -> np.ndarray:
        full: list = [0] * self._ndim
        for axis, sl in zip(self._keep, index):
            full[axis] = sl
        return np.asarray(self._arr[tuple(full)])


# -- import ----------------------------------------------------------------------------------------
def import_neuron(volume: str | Path, skeletons: Sequence[str | Path], out: str | Path,
                  voxel_size: Sequence[float] = (1.0, 1.0, 1.0), paths: str = "longest",
                  min_slices: int = 8, max_slices: int = 48, scale: float | None = None,
                  margin: float = 12.0, min_radius: float = 1.5, contact_gap: float = 1.0,
                  split_seed: int = 0, force: bool = False) -> dict:
    """Import ``volume`` with the neurites traced in ``skeletons`` into the import folder ``out``
    (see :mod:`annobc.importers.common`); returns the import card.

    ``voxel_size``: (z, y, x) size of a voxel in the skeletons' unit (1: the skeleton is in voxels).
    ``paths``: ``longest`` (one path per skeleton) or ``segments`` (every piece between branch
    and turning points). Paths crossing fewer than ``min_slices`` slices are left out; longer ones
    than ``max_slices`` are cut into several instances."""
    if paths not in PATH_MODES:
        raise ImportDataError(f"--paths must be one of {PATH_MODES}, got {paths!r}")
    if not skeletons:
        raise ImportDataError("give at least one SWC skeleton")
    if min_slices < 2 or max_slices < min_slices:
        raise ImportDataError(f"need 2 <= --min-slices <= --max-slices, got {min_slices}, {max_slices}")
    vz, vy, vx = (float(v) for v in voxel_size)
    if min(vz, vy, vx) <= 0:
        raise ImportDataError(f"--voxel-size must be positive, got {voxel_size}")
    vol = Volume(volume)
    S = int(get_task_class(TASK).Params().size)
    sks = [read_swc(p) for p in skeletons]
    # Skeleton coordinates in voxels: x -> column, y -> row, z -> slice.
    vox = [np.column_stack([sk.xyz[:, 0] / vx, sk.xyz[:, 1] / vy, sk.xyz[:, 2] / vz]) for sk in sks]
    rad = [sk.radius / math.sqrt(vx * vy) for sk in sks]
    for sk, v in zip(sks, vox):
        _check_inside(sk, v, vol, (vz, vy, vx))

    # Every path of every skeleton (the neighbours), and the ones that become instances.
    pieces = []  # (skeleton index, rows)
    chosen = []
    for s, (sk, v) in enumerate(zip(sks, vox)):
        segs = segments(sk, v[:, 2])
        pieces += [(s, rows) for rows in segs]
        cands = [longest_path(sk, v[:, 2])] if paths == "longest" else segs
        got = []
        for rows in cands:
            zs, _ = slice_crossings(v, rad[s], rows)
            for a in range(0, len(zs), max_slices):
                if len(zs[a:a + max_slices]) >= min_slices:
                    got.append((s, rows, int(zs[a]), int(zs[min(a + max_slices, len(zs)) - 1])))
        if not got:
            best = max((len(slice_crossings(v, rad[s], r)[0]) for r in cands), default=0)
            raise ImportDataError(f"{sk.path}: no path of the skeleton crosses --min-slices "
                                  f"{min_slices} slices (the longest crosses {best})")
        chosen += got

    options = {"voxel_size": [vz, vy, vx], "paths": paths, "min_slices": min_slices,
               "max_slices": max_slices, "scale": scale, "margin": margin,
               "min_radius": min_radius, "contact_gap": contact_gap, "grid": S}
    with staged_folder(out, force) as tmp:
        instances = []
        for k, (s, rows, za, zb) in enumerate(chosen):
            name = f"{sks[s].path.stem}-{k:03d}"
            arrays, info = _instance(vol, sks, vox, rad, pieces, s, rows, za, zb, name, S, scale,
                                     margin, min_radius, contact_gap)
            sha = write_instance(tmp / "instances" / f"{name}.npz", arrays)
            instances.append({"name": name, "file": f"instances/{name}.npz", "sha256": sha, **info})
        sources = source_entries([vol.path], "volume") + source_entries([sk.path for sk in sks],
                                                                        "skeleton")
        mapping = {"slices": "the volume's z planes (axis 0) that the path crosses, lowest first",
                   "target": "the SWC path's point on each plane; radius from the SWC radius column",
                   "coordinates": "SWC x -> column, y -> row, z -> slice, each divided by the "
                                  "voxel size",
                   "crosshair": "the path's cross-section on slice 0"}
        card = write_card(tmp, "neuron", TASK, sources, mapping, options, instances, split_seed,
                          notes=[f"volume shape (Z, Y, X) {list(vol.shape)}, dtype {vol.dtype}"])
    return card


def _check_inside(sk: Skeleton, v: np.ndarray, vol: Volume, size) -> None:
    Z, Y, X = vol.shape
    lo, hi = -0.5, np.array([X, Y, Z]) - 0.5
    bad = np.flatnonzero(((v < lo) | (v > hi)).any(1))
    if len(bad):
        i = int(bad[0])
        x, y, z = v[i]
        raise ImportDataError(
            f"{sk.path}: {len(bad)} of {len(sk)} samples lie outside the volume {vol.path} "
            f"(Z, Y, X = {Z}, {Y}, {X} voxels), e.g. sample {int(sk.ids[i])} at voxel x {x:.1f}, "
            f"y {y:.1f}, z {z:.1f} (voxel size z, y, x {list(size)}; is the skeleton in another "
            f"unit or volume?)")


def _instance(vol, sks, vox, rad, pieces, s, rows, za, zb, name, S, scale, margin, min_radius,
              contact_gap):
    zs, xyr = slice_crossings(vox[s], rad[s], rows)
    sel = (zs >= za) & (zs <= zb)
    zs, xyr = zs[sel], xyr[sel]
    Z = len(zs)
    # The crop: 1:1 if the path fits with the margin to spare, else shrunk to fit; centred.
    r_max = float(xyr[:, 2].max())
    lo_xy, hi_xy = xyr[:, :2].min(0) - r_max, xyr[:, :2].max(0) + r_max
    extent = float((hi_xy - lo_xy).max())
    room = S - 2 * margin
    f = float(scale) if scale else (1.0 if extent <= room else room / max(extent, 1e-6))
    side = S / f  # source voxels across the grid
    cx, cy = (lo_xy + hi_xy) / 2 + 0.5  # edge coordinates of the bbox centre
    x0, y0 = float(cx - side / 2), float(cy - side / 2)
    data = resample(vol, y0, x0, side, S, order=1, fill=None, lead=(slice(za, zb + 1),))
    images, how = to_uint8(data, vol.dtype)

    def grid_xy(xy):
        return np.column_stack([to_grid(xy[:, 0], x0, side, S), to_grid(xy[:, 1], y0, side, S)])

    target = grid_xy(xyr[:, :2])
    r_target = np.maximum(xyr[:, 2] * f, min_radius)
    if (target < -0.5).any() or (target > S - 0.5).any():
        raise ImportDataError(f"{sks[s].path}: the path of instance {name} leaves the grid at "
                              f"--scale {f:g}; use a larger --scale or none")
    centres, radii, contacts = [target], [r_target], []
    # Neighbours: other paths that touch the target at a slice and drift apart after it.
    own = set(rows)
    for ns, nrows in pieces:
        if ns == s and len(own.intersection(nrows)) >= 2:
            continue  # a piece of the target's own path
        nz, nxyr = slice_crossings(vox[ns], rad[ns], nrows)
        c = np.full((Z, 2), np.nan)
        r = np.full(Z, np.nan)
        idx = nz - za
        ok = (idx >= 0) & (idx < Z)
        if not ok.any():
            continue
        c[idx[ok]] = grid_xy(nxyr[ok, :2])
        r[idx[ok]] = np.maximum(nxyr[ok, 2] * f, min_radius)
        found = _contacts(target, r_target, c, r, contact_gap,
                          [z for z, _ in contacts])
        if found:
            k = len(centres)
            centres.append(c)
            radii.append(r)
            contacts += [(z, k) for z in found]
    contacts.sort()
    sk = sks[s]
    ids = sk.ids[rows]
    info = {"skeleton": str(sk.path.name), "samples": [int(ids[0]), int(ids[-1])],
            "slices": Z, "volume_z": [int(za), int(zb)],
            "crop_xy": [round(x0, 3), round(y0, 3), round(side, 3)], "scale": round(f, 6),
            "radius_clamped": int((xyr[:, 2] * f < min_radius).sum()),
            "neighbours": len(centres) - 1, "contacts": [list(c) for c in contacts], **how}
    arrays = {"task": text_array(TASK), "name": text_array(name),
              "images": images, "centres": np.stack(centres), "radii": np.stack(radii),
              "contacts": np.array(contacts, np.int64).reshape(-1, 2),
              "meta": text_array(json.dumps(info, sort_keys=True))}
    return arrays, info


def _contacts(target, r_target, c, r, gap_max, taken) -> list[int]:
    """Slices where neighbour (c, r) touches the target: its membrane gap there is at most
    ``gap_max`` and the smallest within 3 slices, its centre is plainly outside the target, it is
    on the slice before and the four after, and has drifted a pixel apart three slices on. At
    most one contact per 8 slices (counting ``taken``)."""
    Z = len(target)
    d = np.hypot(*(c - target).T)
    gap = d - r - r_target
    out = []
    for z in np.argsort(np.nan_to_num(gap, nan=np.inf), kind="stable").tolist():
        if not np.isfinite(gap[z]) or gap[z] > gap_max:
            break
        if not 1 <= z <= Z - 5 or np.isnan(gap[z - 1:z + 5]).any():
            continue
        if gap[z] > np.nanmin(gap[max(0, z - 3):z + 4]) or gap[z + 3] <= gap[z] + 1.0:
            continue
        if d[z] <= r_target[z] + 2.0:  # a click on its centre would land inside the target
            continue
        if any(abs(z - t) < 8 for t in taken + out):
            continue
        out.append(z)
    return out
