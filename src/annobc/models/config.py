"""The policy's architecture: a dataclass saved in every checkpoint, so a model rebuilds from it.

Architecture only: what the loss weighs and how is the training side's (annobc.learning.loss,
the ``loss:`` section of a training config).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

HEADS = ("xy", "cells")
ENCODERS = ("cnn", "vit")
# Click categories the auxiliary category head predicts (annobc.tasks.base.CATEGORIES; the model
# imports no task, so the count is spelled out and checked against it by the tests).
N_CATEGORIES = 7


@dataclass
class PolicyConfig:
    screen_w: int = 160
    screen_h: int = 128
    window: int = 8  # K: steps of history the temporal transformer sees
    # Per-frame encoder.
    encoder: str = "cnn"  # "cnn" (CPU) or "vit" (DINOv2-style ViT, timm parameter names)
    # cnn: a stride-4 patch stem to the first width (the cell map), then one stride-2 stage each.
    cnn_channels: tuple[int, ...] = (32, 64, 64)
    vit_patch: int = 14
    vit_dim: int = 384
    vit_depth: int = 12
    vit_heads: int = 6
    pretrained: str = ""  # path to encoder weights on disk (timm / DINOv2 naming); "" = random init
    # Temporal transformer.
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    dropout: float = 0.0
    # Click head: "xy", x over W and y over H (the published head); "cells", which cell of the
    # encoder's map, then where inside it (a factorised per-pixel distribution).
    head: str = "xy"
    # Each cell also sees itself over its last N frames (a causal convolution in time), and the
    # frame token a pooled summary of that; 0 = off.
    cell_history: int = 0
    # cells head: a second query points at the item being worked on (the step's target point) and
    # the state reads what the cells hold there before the click heads decide.
    target_head: bool = False

    def __post_init__(self):
        self.cnn_channels = tuple(self.cnn_channels)
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, got {self.encoder!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})")
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window}")
        if not 0 <= self.cell_history <= self.window:
            raise ValueError(f"cell_history must be in 0..window ({self.window}), got {self.cell_history}")
        if self.target_head and self.head != "cells":
            raise ValueError("target_head needs head: cells (it points with the cells' scores)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cnn_channels"] = list(self.cnn_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PolicyConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown model key(s) {unknown}")
        return cls(**d)


# Size presets for the scaling study (parameter counts at the default 160x128 screen, xy head).
PRESETS: dict[str, dict] = {
    # ~1M: small CNN + 4-layer temporal transformer, the CPU preset.
    "tiny": dict(encoder="cnn", cnn_channels=(32, 64, 64), d_model=96, n_layers=4, n_heads=4),
    # ~5M: wider CNN, 6 layers.
    "small": dict(encoder="cnn", cnn_channels=(64, 96, 128), d_model=192, n_layers=6, n_heads=6),
    # ~28M: DINOv2-style ViT-S/14 + 4-layer temporal transformer (the study's small variant).
    "vit-s": dict(encoder="vit", vit_dim=384, vit_depth=12, vit_heads=6, d_model=384, n_layers=4,
                  n_heads=6),
    # ~95M: DINOv2-style ViT-B/14 + 8-layer temporal transformer (the published model).
    "vit-b": dict(encoder="vit", vit_dim=768, vit_depth=12, vit_heads=12, d_model=384, n_layers=8,
                  n_heads=6),
}


def preset(name: str, **overrides) -> PolicyConfig:
    try:
        base = PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; known: {', '.join(PRESETS)}") from None
    return PolicyConfig(**{**base, **overrides})
