"""One image of a task in every GUI variant, for docs/tasks/variants.md.

The frame is the one the virtual annotator sees before its ``--click``-th click of one episode (the
same scene in every variant), drawn at the 160x128 default screen and upscaled crisply by
``--scale``; small PNGs under docs/img/variants/<variant>.png.

    .venv/bin/python scripts/variant_images.py [--task animal_limb_tracking] [--seed 0]
        [--click 30] [--scale 2] [--out docs/img/variants]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image

from annobc.gui import UI_VARIANTS
from annobc.tasks import run_annotator

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--task", default="animal_limb_tracking")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--click", type=int, default=30, help="the frame before this click")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "docs" / "img" / "variants"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in UI_VARIANTS:
        frames: list = []
        rec = run_annotator(args.task, args.seed, frames=frames, ui_variant=name)
        frame = frames[min(args.click, len(frames) - 1)]
        img = Image.fromarray(frame.repeat(args.scale, 0).repeat(args.scale, 1))
        path = out / f"{name}.png"
        img.save(path, optimize=True)
        print(f"{path} ({path.stat().st_size} bytes; {rec.task_id} seed {rec.seed}, "
              f"{len(rec)} clicks, success {rec.success})")


if __name__ == "__main__":
    main()
