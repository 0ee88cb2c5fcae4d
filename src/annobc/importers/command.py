"""The ``annobc import`` subcommand: argument parsing and the summary it prints (the CLI wires it
in with :func:`add_arguments` and :func:`run`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _floats3(text: str) -> tuple[float, float, float]:
    try:
        vals = tuple(float(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        vals = ()
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise argparse.ArgumentTypeError(f"voxel size must look like 1 or 2,0.5,0.5 (z,y,x), got {text!r}")
    return vals  # type: ignore[return-value]


def add_arguments(p: argparse.ArgumentParser) -> None:
    kinds = p.add_subparsers(dest="kind", required=True, metavar="KIND")

    def common(s):
        s.add_argument("--out", required=True, help="the import folder to write (must not exist)")
        s.add_argument("--split-seed", type=int, default=0,
                       help="seed of the instances' train/val/test split (default 0)")
        s.add_argument("--force", action="store_true", help="replace --out if it exists")
        s.add_argument("--json", action="store_true", help="print the import card as JSON")

    s = kinds.add_parser("neuron", help="a volume (TIFF stack or zarr) + SWC skeletons -> "
                                        "neuron_tracking instances")
    s.add_argument("volume", help="TIFF stack (Z, Y, X) or zarr array / group")
    s.add_argument("skeletons", nargs="+", metavar="SKELETON.swc", help="SWC skeletons of neurites to trace")
    s.add_argument("--voxel-size", type=_floats3, default=(1.0, 1.0, 1.0), metavar="Z,Y,X",
                   help="a voxel's size in the skeleton's unit (default 1: the SWC is in voxels)")
    s.add_argument("--paths", choices=("longest", "segments"), default="longest",
                   help="longest: one path per skeleton; segments: every piece between branch "
                        "and turning points (default longest)")
    s.add_argument("--min-slices", type=int, default=8)
    s.add_argument("--max-slices", type=int, default=48, help="longer paths make several instances")
    s.add_argument("--scale", type=float, default=None,
                   help="data pixels per voxel (default: 1, or smaller where the path needs room)")
    s.add_argument("--contact-gap", type=float, default=1.0,
                   help="membrane gap (data pixels) at which another traced neurite touches the "
                        "target (default 1)")
    common(s)

    s = kinds.add_parser("pose", help="DeepLabCut labelled frames -> animal_limb_tracking instances")
    s.add_argument("labels", help="a labeled-data video folder, a folder of them, or a "
                                  "CollectedData_*.csv/.h5")
    s.add_argument("--mapping", default=None, help="YAML/JSON file: keypoints: {NOSE: part, ...}, "
                                                   "ignore: [...] (default: the usual names)")
    s.add_argument("--individual", default=None, help="multi-animal tables: which individual")
    s.add_argument("--frames-per-instance", type=int, default=8, help="2-10 (default 8)")
    s.add_argument("--scale", type=float, default=None, help="data pixels per image pixel")
    common(s)

    s = kinds.add_parser("tracks", help="a Cell Tracking Challenge folder -> cell_lineage_tracking "
                                        "instances")
    s.add_argument("tracks", help="folder with man_track*.tif + man_track.txt (NN_GT/TRA) or "
                                  "mask*.tif + res_track.txt (NN_RES)")
    s.add_argument("--images", default=None, help="raw frames t*.tif (default: the NN folder beside it)")
    s.add_argument("--min-frames", type=int, default=8)
    s.add_argument("--max-frames", type=int, default=30)
    s.add_argument("--max-instances", type=int, default=None, help="at most this many lineages")
    s.add_argument("--cell-radius", type=float, default=5.5,
                   help="nucleus radius on the grid, data pixels (default 5.5)")
    s.add_argument("--scale", type=float, default=None, help="data pixels per image pixel")
    common(s)


def run(args) -> int:
    from annobc.importers import import_neuron, import_pose, import_tracks

    if args.kind == "neuron":
        card = import_neuron(args.volume, args.skeletons, args.out, voxel_size=args.voxel_size,
                             paths=args.paths, min_slices=args.min_slices,
                             max_slices=args.max_slices, scale=args.scale,
                             contact_gap=args.contact_gap, split_seed=args.split_seed,
                             force=args.force)
    elif args.kind == "pose":
        card = import_pose(args.labels, args.out, mapping=args.mapping, individual=args.individual,
                           frames_per_instance=args.frames_per_instance, scale=args.scale,
                           split_seed=args.split_seed, force=args.force)
    else:
        card = import_tracks(args.tracks, args.out, images=args.images, min_frames=args.min_frames,
                             max_frames=args.max_frames, cell_radius=args.cell_radius,
                             scale=args.scale, max_instances=args.max_instances,
                             split_seed=args.split_seed, force=args.force)
    if args.json:
        print(json.dumps(card, indent=2))
        return 0
    out = Path(args.out).resolve()
    counts = ", ".join(f"{s} {len(n)}" for s, n in card["splits"].items())
    print(f"{card['task']}: {len(card['instances'])} instance(s) ({counts}) -> {out}")
    for note in card["notes"]:
        print(f"  note: {note}")
    print(f"next: annobc generate --tasks {card['task']} --param {card['task']}.instance={out} "
          f"--episodes-per-task N --out DATASET")
    return 0
