"""Animated GIFs of episodes: each frame upscaled crisply with the click made on it drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from annobc.gui.raster import draw_mark

CLICK_COLOR = (255, 40, 200)


def annotate_click(frame: np.ndarray, x: int, y: int, scale: int) -> np.ndarray:
    """Upscale a frame by ``scale`` (nearest) and draw a ring where the click lands."""
    big = frame.repeat(scale, 0).repeat(scale, 1)
    cx, cy = x * scale + scale // 2, y * scale + scale // 2
    draw_mark(big, cx, cy, CLICK_COLOR, "ring", 3 * scale)
    draw_mark(big, cx, cy, CLICK_COLOR, "disc", max(1, scale // 2))
    return big


def save_gif(frames: Sequence[np.ndarray], clicks: Sequence[tuple[int, int]], path: str | Path,
             scale: int = 2, ms_per_frame: int = 120, max_frames: int | None = None) -> Path:
    """Write frames (one per click, plus an optional final frame) as an animated GIF.

    ``frames[i]`` is the screen the click ``clicks[i]`` was made on. A trailing extra frame is
    shown without a click and held longer.
    """
    from PIL import Image

    if len(frames) not in (len(clicks), len(clicks) + 1):
        raise ValueError(f"need one frame per click (+1 final), got {len(frames)} for {len(clicks)}")
    images = []
    for i, frame in enumerate(frames):
        if i < len(clicks):
            img = annotate_click(frame, *clicks[i], scale)
        else:
            img = frame.repeat(scale, 0).repeat(scale, 1)
        images.append(Image.fromarray(img))
    if max_frames is not None and len(images) > max_frames:
        keep = np.linspace(0, len(images) - 1, max_frames).round().astype(int)
        images = [images[i] for i in keep]
    durations = [ms_per_frame] * len(images)
    durations[-1] = 1500
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0,
                   optimize=True)
    return path
