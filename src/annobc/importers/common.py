"""What the three importers share: one-line errors, the staged output folder, source hashes, the
import card and its deterministic splits, byte-stable instance files, and resampling a crop of a
real image onto a task's data grid.

An import folder (the ``--out`` of ``annobc import``) is::

    import.json                 the import card: sources and their sha256, the mapping used, the
                                annobc version, the options, every instance and its split
    instances/<name>.npz        one instance each: image data on the task's grid, ground truth

It is written into a temporary sibling folder and renamed into place at the end, so a failed import
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

from annobc.data.generate import SPLIT_STRIDE, SPLITS, Plan, code_version
from annobc.tasks.registry import get_task_class

CARD = "import.json"  # the tasks read it as INSTANCE_INDEX
FORMAT = "annobc-import"
FORMAT_VERSION = 1
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


class ImportDataError(ValueError):
    """Data that cannot be imported: one line naming the file and what is wrong with it."""


# -- sources -------------------------------------------------------------------------------------
def sha256_of(path: str | Path) -> str:
    """sha256 of a file, or of a folder (a zarr store): its files' relative paths and contents in
    sorted order."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
        return h.hexdigest()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def source_entries(paths: Iterable[str | Path], role: str) -> list[dict]:
    return [{"role": role, "path": str(Path(p).resolve()), "sha256": sha256_of(p)} for p in paths]


# -- output --------------------------------------------------------------------------------------
@contextlib.contextmanager
def staged_folder(out: str | Path, force: bool = False) -> Iterator[Path]:
    """A temporary folder beside ``out`` that becomes ``out`` when the block ends without an
    error, and is removed when it raises: nothing is ever half-written at ``out``."""
    out = Path(out)
    if out.exists() and not force:
        raise ImportDataError(f"{out}: already exists; imports never write into an existing folder "
                              f"(use a new --out, or --force to replace it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.import-tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():  # --force: swap the old folder out, the new one in, then drop the old one
        old = out.parent / f".{out.name}.import-old{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def write_instance(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """Write an instance as an ``.npz`` (read by ``np.load``) whose bytes depend on the arrays only
    (fixed member order and timestamps), so that the same import gives the same sha256; returns
    it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                a = np.asarray(arrays[name])
                np.lib.format.write_array(fh, a if a.flags.c_contiguous else a.copy(),
                                          allow_pickle=False)
    return sha256_of(path)


def text_array(text: str) -> np.ndarray:
    """A string as a 0-d array (stored without pickling)."""
    return np.array(text)


def assign_splits(names: Sequence[str], seed: int) -> dict[str, list[str]]:
    """Instances into train / val / test: the names sorted, shuffled by ``seed``, cut in the
    proportions ``annobc generate`` uses for seeds (at least one val and one test instance from
    three instances on; fewer all go to train)."""
    order = sorted(names)
    perm = np.random.default_rng([int(seed), 0x1A4B]).permutation(len(order))
    shuffled = [order[i] for i in perm]
    counts = Plan(tasks=(), episodes_per_task=len(order), split_fractions=SPLIT_FRACTIONS).split_counts()
    out, at = {}, 0
    for split in SPLITS:
        out[split] = sorted(shuffled[at:at + counts[split]])
        at += counts[split]
    return out


def write_card(folder: Path, kind: str, task_id: str, sources: list[dict], mapping: dict,
               options: dict, instances: list[dict], split_seed: int, notes: Sequence[str] = ()) -> dict:
    """The import card: everything needed to redo the import and to check that it was."""
    names = [i["name"] for i in instances]
    splits = assign_splits(names, split_seed)
    split_of = {n: s for s, ns in splits.items() for n in ns}
    for i in instances:
        i["split"] = split_of[i["name"]]
    card = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": kind, "task": task_id,
        "task_version": get_task_class(task_id).version, "annobc_version": code_version(),
        "grid": int(get_task_class(task_id).Params().size),
        "sources": sources, "mapping": mapping, "options": options,
        "split_seed": int(split_seed), "split_order": list(SPLITS), "seed_stride": SPLIT_STRIDE,
        "splits": splits, "instances": instances, "notes": list(notes),
        "seed_rule": ("with the task parameter instance=<this folder>, scene seed s plays instance "
                      "splits[split_order[(s // seed_stride) % 3]][(s % seed_stride) % n] (a split "
                      "without instances takes from all), so the seed ranges of annobc generate's "
                      "splits play this folder's splits"),
        "generate": (f"annobc generate --tasks {task_id} --param {task_id}.instance="
                     f"<this folder> --episodes-per-task N --out DATASET"),
    }
    (folder / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return card


# -- images --------------------------------------------------------------------------------------
def _weights(start: float, side: float, out: int, n: int, order: int) -> tuple[np.ndarray, int, int]:
    """Resampling weights along one axis: output pixel i covers source edge coordinates
    [start + i f, start + (i + 1) f), f = side / out (source pixel r covers [r, r + 1)). Returns
    (W (out, hi - lo), lo, hi): output = W @ source[lo:hi]; rows sum to the share of the output
    pixel that lies on the source (the rest is fill). ``order`` 0: the source pixel under the
    output pixel's centre; 1: area average when shrinking, linear when enlarging."""
    f = side / out
    i = np.arange(out, dtype=np.float64)
    if order == 0:
        idx = np.floor(start + (i + 0.5) * f).astype(np.int64)
        ok = (idx >= 0) & (idx < n)
        lo, hi = (int(idx[ok].min()), int(idx[ok].max()) + 1) if ok.any() else (0, 0)
        W = np.zeros((out, hi - lo))
        W[np.flatnonzero(ok), idx[ok] - lo] = 1.0
        return W, lo, hi
    if f >= 1.0:
        a, b = start + i * f, start + (i + 1) * f
        lo, hi = max(int(np.floor(a[0])), 0), min(int(np.ceil(b[-1])), n)
        if hi <= lo:
            return np.zeros((out, 0)), 0, 0
        r = np.arange(lo, hi, dtype=np.float64)
        W = np.clip(np.minimum(b[:, None], r[None, :] + 1) - np.maximum(a[:, None], r[None, :]),
                    0.0, None) / f
        return W, lo, hi
    c = start + (i + 0.5) * f - 0.5  # source centre coordinates of the output centres
    on = (c >= -0.5) & (c <= n - 0.5)  # on the image: its edge pixels reach to its border
    c = np.where(on, np.clip(c, 0.0, n - 1.0), c)
    lo, hi = max(int(np.floor(c[0])), 0), min(int(np.floor(c[-1])) + 2, n)
    if hi <= lo:
        return np.zeros((out, 0)), 0, 0
    r = np.arange(lo, hi, dtype=np.float64)
    W = np.clip(1.0 - np.abs(c[:, None] - r[None, :]), 0.0, None)
    return W, lo, hi


def resample(img, y0: float, x0: float, side: float, out: int, order: int = 1,
             fill: float | None = 0.0, channels_last: bool = False, lead: tuple = ()) -> np.ndarray:
    """The square crop [y0, y0 + side) x [x0, x0 + side) (source edge coordinates; it may reach
    past the image, where ``fill`` is taken) of a 2D image ``img`` (H, W), or (H, W, C) with
    ``channels_last``, or of a stack (..., H, W) of which ``lead`` (slices of the leading axes)
    is taken, resampled to (out, out), (out, out, C) or (..., out, out) float64. ``img`` may be
    any array-like that slices (a zarr array, a memmap): only the rows and columns the crop needs
    are read. ``order`` 0 (labels) samples, 1 averages. ``fill`` None: the median of the pixels
    that lie wholly on the image."""
    shape = img.shape
    H, W_ = (shape[-3], shape[-2]) if channels_last else (shape[-2], shape[-1])
    if order == 0 and not channels_last:  # sampling: index, no arithmetic
        return _sample(img, y0, x0, side, out, fill or 0.0, lead, H, W_)
    Wy, ylo, yhi = _weights(y0, side, out, H, order)
    Wx, xlo, xhi = _weights(x0, side, out, W_, order)
    cover = np.outer(Wy.sum(1), Wx.sum(1))
    # einsum, not matmul: its own loops, where a multithreaded BLAS stalls for seconds on small
    # products when the machine's cores are busy.
    if channels_last:
        src = np.asarray(img[ylo:yhi, xlo:xhi], np.float64)
        res = np.einsum("ixc,jx->ijc", np.einsum("iy,yxc->ixc", Wy, src), Wx)
        cover = cover[:, :, None]
    else:
        src = np.asarray(img[tuple(lead) + (slice(ylo, yhi), slice(xlo, xhi))], np.float64)
        res = np.einsum("...ix,jx->...ij", np.einsum("iy,...yx->...ix", Wy, src), Wx)
    if fill is None:
        whole = np.broadcast_to(cover >= 1.0 - 1e-9, res.shape)
        fill = float(np.median(res[whole])) if whole.any() else 0.0
    return res + (1.0 - cover) * fill


def _sample(img, y0, x0, side, out, fill, lead, H, W_) -> np.ndarray:
    i = np.arange(out, dtype=np.float64)
    iy = np.floor(y0 + (i + 0.5) * (side / out)).astype(np.int64)
    ix = np.floor(x0 + (i + 0.5) * (side / out)).astype(np.int64)
    oky, okx = (iy >= 0) & (iy < H), (ix >= 0) & (ix < W_)
    if not (oky.any() and okx.any()):
        lead_shape = np.empty(img.shape[:-2])[tuple(lead)].shape if lead else img.shape[:-2]
        return np.full(lead_shape + (out, out), float(fill))
    ylo, yhi, xlo, xhi = iy[oky].min(), iy[oky].max() + 1, ix[okx].min(), ix[okx].max() + 1
    src = np.asarray(img[tuple(lead) + (slice(ylo, yhi), slice(xlo, xhi))])
    res = src[..., np.clip(iy - ylo, 0, yhi - ylo - 1)[:, None],
              np.clip(ix - xlo, 0, xhi - xlo - 1)[None, :]].astype(np.float64)
    res[..., ~(oky[:, None] & okx[None, :])] = fill
    return res


def to_uint8(data: np.ndarray, source_dtype, low_high: tuple[float, float] | None = None
             ) -> tuple[np.ndarray, dict]:
    """Resampled intensities as uint8: 8-bit sources as they are, others stretched linearly from
    their 0.5th to 99.5th percentile (or ``low_high``) to 0..255. Returns the image and how."""
    if np.dtype(source_dtype) == np.uint8 and low_high is None:
        return np.clip(np.floor(data + 0.5), 0, 255).astype(np.uint8), {"contrast": "as is (8-bit)"}
    lo, hi = low_high if low_high is not None else (float(np.percentile(data, 0.5)),
                                                     float(np.percentile(data, 99.5)))
    if hi <= lo:
        hi = lo + 1.0
    out = np.clip(np.floor((data - lo) * (255.0 / (hi - lo)) + 0.5), 0, 255).astype(np.uint8)
    return out, {"contrast": "linear", "low": lo, "high": hi}


def to_grid(p, start: float, side: float, out: int):
    """Source pixel-centre coordinates (pixel r centred at r) -> the task's data coordinates on a
    crop starting at ``start`` (edge coordinates) of ``side`` source pixels shown on ``out``."""
    return (np.asarray(p, np.float64) + 0.5 - start) * (out / side) - 0.5


def relative_name(text: str) -> str:
    """A file-name-safe instance name."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return keep.strip("._") or "instance"
