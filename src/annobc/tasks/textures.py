"""Scene textures shared by tasks: fixed noise fields that scenes crop from.

Per-frame noise is never generated per step: each task draws crop offsets from its scene rng and
reads a fixed field, so a slice looks the same whatever the visiting order, and setup stays cheap.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=16)
def camera_noise(side: int, seed: int, channels: int = 0) -> np.ndarray:
    """A (side, side[, channels]) float32 field of unit-variance noise, slightly correlated (the
    mean of 2x2 neighbours, times 2), like camera noise after demosaicing. Read-only."""
    shape = (side + 1, side + 1) + ((channels,) if channels else ())
    n = np.random.default_rng(seed).normal(0.0, 1.0, shape)
    n = 0.5 * (n[:-1, :-1] + n[1:, 1:] + n[:-1, 1:] + n[1:, :-1])
    n = n.astype(np.float32)
    n.flags.writeable = False
    return n
