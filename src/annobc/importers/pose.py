"""``annobc import pose``: DeepLabCut labelled frames -> animal_limb_tracking instances.

A DeepLabCut project keeps its labels per video in ``labeled-data/<video>/``: the frames
(``img0042.png``, ...) and ``CollectedData_<scorer>.csv`` (or ``.h5``, the same table written by
pandas). The CSV has three header rows, ``scorer``, ``bodyparts`` and ``coords`` (``x``, ``y``),
then one row per labelled frame: the frame's path (one column, or three in newer versions:
``labeled-data``, the video, the file name) and x, y of every body part (empty where a part was
not labelled). Multi-animal projects add an ``individuals`` row; one individual is imported.

The body parts are mapped onto the task's six keypoints (NOSE, TAIL = tail base, FL, FR, HL, HR =
front/hind paw on the animal's own left/right) by their usual names (``nose``/``snout``,
``tailbase``, ``front_left``/``forepaw_left``/``FL``, ... see :data:`ALIASES`), or by a mapping
file (YAML or JSON)::

    keypoints: {NOSE: snout, TAIL: tail_base, FL: paw_fl, FR: paw_fr, HL: paw_hl, HR: paw_hr}
    ignore: [ear_left, ear_right, tail_tip]    # body parts that are not keypoints of the task

Every body part of the table must be mapped or ignored: an unknown one is an error. Frames that
lack any of the six are left out (the card lists them). A video's labelled frames, in file-name
order, make instances of at most ``frames_per_instance`` frames. Each frame is cropped around
the animal (a square centred on its keypoints, the same size in every frame of an instance,
scaled so that the body is about 40 data pixels from nose to tail base, as in generated scenes,
or smaller where the paws need the room) and resampled onto the grid.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from annobc.importers.common import (ImportDataError, relative_name, resample, source_entries,
                                     staged_folder, text_array, to_grid, write_card, write_instance)
from annobc.tasks.registry import get_task_class

TASK = "animal_limb_tracking"
KEYPOINTS = ("NOSE", "TAIL", "FL", "FR", "HL", "HR")  # the task's, in its order
HEADER_ROWS = ("scorer", "individuals", "bodyparts", "coords")
BODY_PX = 40.0  # nose to tail base on the grid, as the generated animals (36-44 px)
EDGE = 14.0  # the keypoints keep this far inside the grid (room for the paws and the head)
MAX_FRAMES = 10  # the most frames an instance may have (the task's correction_length covers 10)


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _sides(front: str, side: str) -> list[str]:
    s, f = side, front
    words = {"front": ["front", "fore", "forepaw", "forelimb", "frontpaw", "forefoot", "hand"],
             "hind": ["hind", "back", "rear", "hindpaw", "hindlimb", "foot", "hindfoot"]}
    out = [f"{s[0]}{f[0]}", f"{f[0]}{s[0]}", f"paw{f[0]}{s[0]}"]
    for w in words[f]:
        out += [f"{w}{s}", f"{s}{w}", f"{w}{s}paw", f"{s}{w}paw", f"{w}paw{s}", f"{s}paw{w}"]
    return out


# Body part names (lower case, letters and digits only) taken for each keypoint by default.
ALIASES: dict[str, tuple[str, ...]] = {
    "NOSE": ("nose", "snout", "nosetip"),
    "TAIL": ("tailbase", "tailroot", "tail", "tail1", "tailstart", "basetail"),
    "FL": tuple(_sides("front", "left")),
    "FR": tuple(_sides("front", "right")),
    "HL": tuple(_sides("hind", "left")),
    "HR": tuple(_sides("hind", "right")),
}


class LabelTable:
    """One video's labels: the frame files and each body part's (n, 2) x, y (NaN: unlabelled)."""

    def __init__(self, path: Path, images: list[str], parts: dict[str, np.ndarray]):
        self.path, self.images, self.parts = path, images, parts


def _empty(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == ""


def read_csv_labels(path: Path, individual: str | None = None) -> LabelTable:
    import pandas as pd

    try:
        raw = pd.read_csv(path, header=None, dtype=str, keep_default_na=False)
    except Exception as e:  # pandas' parser errors
        raise ImportDataError(f"{path}: not a readable CSV ({type(e).__name__}: {e})") from None
    rows = raw.values.tolist()
    head = {}
    for r in rows[:4]:
        key = str(r[0]).strip().lower()
        if key not in HEADER_ROWS:
            break
        head[key] = [str(v).strip() for v in r]
    if not {"scorer", "bodyparts", "coords"} <= set(head):
        raise ImportDataError(f"{path}: not a DeepLabCut table: it needs the header rows scorer, "
                              f"bodyparts and coords (found {sorted(head) or 'none'})")
    n_head = len(head)
    coords = head["coords"]
    data_cols = [j for j, c in enumerate(coords) if c in ("x", "y", "likelihood")]
    if not data_cols:
        raise ImportDataError(f"{path}: its coords row names no x or y column")
    index_cols = list(range(data_cols[0]))
    inds = head.get("individuals")
    chosen = None
    if inds is not None:
        names = sorted({inds[j] for j in data_cols})
        chosen = individual or next(inds[j] for j in data_cols)
        if chosen not in names:
            raise ImportDataError(f"{path}: no individual {chosen!r}; it has {names}")
    cols: dict[str, dict[str, int]] = {}
    for j in data_cols:
        if chosen is not None and inds[j] != chosen:
            continue
        cols.setdefault(head["bodyparts"][j], {})[coords[j]] = j
    images = []
    body = rows[n_head:]
    for r in body:
        images.append("/".join(str(r[j]).strip() for j in index_cols if str(r[j]).strip()))
    parts = {}
    for bp, cj in cols.items():
        if "x" not in cj or "y" not in cj:
            raise ImportDataError(f"{path}: body part {bp!r} lacks an x or a y column")
        xy = np.full((len(body), 2), np.nan)
        for i, r in enumerate(body):
            for a, c in enumerate(("x", "y")):
                v = r[cj[c]]
                if not _empty(v):
                    try:
                        xy[i, a] = float(v)
                    except ValueError:
                        raise ImportDataError(f"{path} line {n_head + i + 1}: {bp} {c} is not a "
                                              f"number: {v!r}") from None
        parts[bp] = xy
    return LabelTable(path, images, parts)


def read_h5_labels(path: Path, individual: str | None = None) -> LabelTable:
    import pandas as pd

    try:
        df = pd.read_hdf(path)
    except ImportError as e:
        raise ImportDataError(f"{path}: reading DeepLabCut .h5 tables needs PyTables "
                              f"(pip install 'annobc[import]'): {e}") from None
    except Exception as e:  # pandas/PyTables errors for a file that is not such a table
        raise ImportDataError(f"{path}: not a readable DeepLabCut table ({type(e).__name__}: {e})") from None
    names = list(df.columns.names)
    if "bodyparts" not in names or "coords" not in names:
        raise ImportDataError(f"{path}: not a DeepLabCut table (column levels {names}; need "
                              f"bodyparts and coords)")
    if "individuals" in names:
        inds = list(dict.fromkeys(df.columns.get_level_values("individuals")))
        chosen = individual or inds[0]
        if chosen not in inds:
            raise ImportDataError(f"{path}: no individual {chosen!r}; it has {inds}")
        df = df.xs(chosen, axis=1, level="individuals")
    images = ["/".join(str(v) for v in (i if isinstance(i, tuple) else (i,))) for i in df.index]
    parts = {}
    bps = list(dict.fromkeys(df.columns.get_level_values("bodyparts")))
    for bp in bps:
        sub = df.xs(bp, axis=1, level="bodyparts")
        sub = sub.droplevel([n for n in sub.columns.names if n != "coords"], axis=1) \
            if sub.columns.nlevels > 1 else sub
        if "x" not in sub.columns or "y" not in sub.columns:
            raise ImportDataError(f"{path}: body part {bp!r} lacks an x or a y column")
        parts[str(bp)] = np.column_stack([sub["x"].to_numpy(float), sub["y"].to_numpy(float)])
    return LabelTable(path, images, parts)


def find_tables(src: Path) -> list[Path]:
    """The label tables under ``src``: a table file itself, a labeled-data video folder's
    CollectedData_* (the CSV where both are), or those of every video folder under it."""
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise ImportDataError(f"{src}: no such folder or label table")

    def in_folder(d: Path) -> Path | None:
        csv = sorted(d.glob("CollectedData_*.csv"))
        h5 = sorted(d.glob("CollectedData_*.h5"))
        return (csv or h5 or [None])[0]

    own = in_folder(src)
    if own is not None:
        return [own]
    found = [t for d in sorted(p for p in src.iterdir() if p.is_dir()) if (t := in_folder(d))]
    if not found:
        raise ImportDataError(f"{src}: no CollectedData_*.csv or .h5 in it or its subfolders")
    return found


def load_mapping(path: str | Path | None, table: LabelTable) -> tuple[dict[str, str], list[str], str]:
    """keypoint -> body part, the ignored body parts, and where the mapping came from."""
    bps = list(table.parts)
    if path is None:
        mapping, unknown = {}, []
        for bp in bps:
            n = _norm(bp)
            kp = next((k for k, names in ALIASES.items() if n in names), None)
            if kp is None:
                unknown.append(bp)
            elif kp in mapping:
                raise ImportDataError(f"{table.path}: body parts {mapping[kp]!r} and {bp!r} both "
                                      f"read as {kp}; write a mapping file (--mapping)")
            else:
                mapping[kp] = bp
        if unknown:
            raise ImportDataError(f"{table.path}: unknown bodyparts {unknown} (the task's keypoints "
                                  f"are {', '.join(KEYPOINTS)}); write a mapping file (--mapping) "
                                  f"that names each keypoint's body part and lists the others "
                                  f"under ignore")
        ignore, source = [], "default names"
    else:
        path = Path(path)
        import yaml

        try:
            spec = yaml.safe_load(path.read_text())  # JSON is YAML too
        except FileNotFoundError:
            raise ImportDataError(f"{path}: no such mapping file") from None
        except yaml.YAMLError as e:
            raise ImportDataError(f"{path}: not YAML or JSON ({e})") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("keypoints"), dict):
            raise ImportDataError(f"{path}: a mapping file has 'keypoints: {{NOSE: <body part>, "
                                  f"...}}' (and optionally 'ignore: [...]')")
        mapping = {str(k).upper(): str(v) for k, v in spec["keypoints"].items()}
        ignore = [str(v) for v in spec.get("ignore") or []]
        bad = sorted(set(mapping) - set(KEYPOINTS))
        if bad:
            raise ImportDataError(f"{path}: {bad} are not keypoints of the task ({', '.join(KEYPOINTS)})")
        absent = sorted({*mapping.values(), *ignore} - set(bps))
        if absent:
            raise ImportDataError(f"{path}: body parts {absent} are not in {table.path.name} "
                                  f"(it has {bps})")
        unknown = [bp for bp in bps if bp not in mapping.values() and bp not in ignore]
        if unknown:
            raise ImportDataError(f"{table.path}: unknown bodyparts {unknown}: {path} neither maps "
                                  f"nor ignores them")
        source = str(path)
    missing = [k for k in KEYPOINTS if k not in mapping]
    if missing:
        raise ImportDataError(f"{path or table.path}: no body part for keypoint(s) {missing}")
    return {k: mapping[k] for k in KEYPOINTS}, ignore, source


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise
    except Exception as e:  # PIL's errors for a file that is not an image
        raise ImportDataError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None


def _frame_file(table: LabelTable, name: str, row: int) -> Path:
    folder = table.path.parent
    cands = [folder / Path(name).name, folder.parent.parent / name, folder / name]
    for c in cands:
        if c.is_file():
            return c
    raise ImportDataError(f"{table.path} row {row + 1}: frame {name!r} not found in {folder}")


def import_pose(src: str | Path, out: str | Path, mapping: str | Path | None = None,
                individual: str | None = None, frames_per_instance: int = 8,
                scale: float | None = None, split_seed: int = 0, force: bool = False) -> dict:
    """Import the DeepLabCut labels at ``src`` (a labeled-data video folder, a folder of them, or
    a CollectedData table) into the import folder ``out``."""
    if not 2 <= frames_per_instance <= MAX_FRAMES:
        raise ImportDataError(f"--frames-per-instance must be 2..{MAX_FRAMES}, got {frames_per_instance}")
    S = int(get_task_class(TASK).Params().size)
    tables = []
    for tpath in find_tables(Path(src)):
        if tpath.suffix.lower() in (".h5", ".hdf5", ".hdf"):
            tables.append(read_h5_labels(tpath, individual))
        elif tpath.suffix.lower() == ".csv":
            tables.append(read_csv_labels(tpath, individual))
        else:
            raise ImportDataError(f"{tpath}: a label table is a DeepLabCut .csv or .h5")
    maps = [load_mapping(mapping, t) for t in tables]
    notes, plans = [], []
    for table, (kmap, _, _) in zip(tables, maps):
        gt = np.stack([table.parts[kmap[k]] for k in KEYPOINTS], 1)  # (n, 6, 2)
        order = sorted(range(len(table.images)), key=lambda i: table.images[i])
        keep = [i for i in order if np.isfinite(gt[i]).all()]
        dropped = [table.images[i] for i in order if i not in keep]
        if dropped:
            notes.append(f"{table.path.name}: {len(dropped)} frame(s) without all six keypoints "
                         f"left out: {dropped[:5]}{' ...' if len(dropped) > 5 else ''}")
        if len(keep) < 2:
            notes.append(f"{table.path}: under 2 frames with all six keypoints; no instance")
            continue
        k = int(np.ceil(len(keep) / frames_per_instance))
        for j, chunk in enumerate(np.array_split(np.array(keep), k)):
            plans.append((table, gt, chunk.tolist(), f"{_video_name(table)}-{j:03d}"))
    if not plans:
        raise ImportDataError(f"{src}: no video has 2 frames with all six keypoints")
    options = {"frames_per_instance": frames_per_instance, "scale": scale, "grid": S,
               "individual": individual}
    used: list[Path] = []
    with staged_folder(out, force) as tmp:
        instances = []
        for table, gt, rows, name in plans:
            files = [_frame_file(table, table.images[i], i) for i in rows]
            arrays, info = _instance(table, gt[rows], files, S, scale, name)
            used += files
            sha = write_instance(tmp / "instances" / f"{name}.npz", arrays)
            instances.append({"name": name, "file": f"instances/{name}.npz", "sha256": sha, **info})
        sources = (source_entries([t.path for t in tables], "labels")
                   + source_entries(used, "frames")
                   + (source_entries([mapping], "mapping") if mapping else []))
        card_mapping = {"keypoints": maps[0][0], "ignore": maps[0][1], "from": maps[0][2],
                        "sides": "L/R are the animal's own left and right, as DeepLabCut labels "
                                 "are usually named"}
        if any(m[0] != maps[0][0] for m in maps):
            card_mapping["per_table"] = {str(t.path): m[0] for t, m in zip(tables, maps)}
        card = write_card(tmp, "pose", TASK, sources, card_mapping, options, instances, split_seed,
                          notes=notes)
    return card


def _video_name(table: LabelTable) -> str:
    return relative_name(table.path.parent.name)


def _instance(table: LabelTable, gt: np.ndarray, files: list[Path], S: int, scale, name: str):
    T = len(files)
    lo, hi = gt.min(1), gt.max(1)  # (T, 2) keypoint boxes, source pixel centres
    extent = float((hi - lo).max()) + 1.0
    body = float(np.median(np.hypot(*(gt[:, 0] - gt[:, 1]).T)))
    if scale:
        f = float(scale)
    else:
        f = (S - 2 * EDGE) / extent
        if body > 0:
            f = min(f, BODY_PX / body)
    side = S / f
    images, points, crops = [], [], []
    for t in range(T):
        cx, cy = (lo[t] + hi[t]) / 2 + 0.5  # edge coordinates of the keypoints' box centre
        x0, y0 = float(cx - side / 2), float(cy - side / 2)
        img = _read_png(files[t])
        images.append(np.clip(np.floor(resample(img, y0, x0, side, S, order=1, fill=None,
                                                channels_last=True) + 0.5), 0, 255).astype(np.uint8))
        points.append(np.column_stack([to_grid(gt[t, :, 0], x0, side, S),
                                       to_grid(gt[t, :, 1], y0, side, S)]))
        crops.append([round(x0, 3), round(y0, 3)])
    pts = np.stack(points)
    if (pts < 0).any() or (pts > S - 1).any():
        raise ImportDataError(f"{table.path}: keypoints of instance {name} leave the grid at "
                              f"--scale {f:g}; use a smaller --scale or none")
    info = {"table": table.path.name, "frames": [files[0].name, files[-1].name], "n_frames": T,
            "frame_files": [p.name for p in files], "crop_side": round(side, 3),
            "crop_xy": crops, "scale": round(f, 6)}
    arrays = {"task": text_array(TASK), "name": text_array(name), "images": np.stack(images),
              "gt": pts, "meta": text_array(json.dumps(info, sort_keys=True))}
    return arrays, info
