"""The policy's configuration: a dataclass saved in every checkpoint, so a model rebuilds from it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

HEADS = ("xy", "heatmap")
ENCODERS = ("cnn", "vit")


@dataclass
class PolicyConfig:
    screen_w: int = 160
    screen_h: int = 128
    window: int = 8  # K: steps of history the temporal transformer sees
    # Per-frame encoder.
    encoder: str = "cnn"  # "cnn" (CPU) or "vit" (DINOv2-style ViT, timm parameter names)
    cnn_channels: tuple[int, ...] = (16, 32, 64, 64)  # one stride-2 stage each
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
    # Click head.
    head: str = "xy"  # "xy": x over W and y over H (published); "heatmap": every screen pixel
    spatial_context: bool = False  # cnn: add deeper stages' features to the heatmap's (FPN-style)
    spatial_history: int = 0  # each spatial cell also sees itself over the last N frames (0 = off)
    spatial_summary: bool = False  # with spatial_history: the transformer reads it, pooled
    # With spatial_history: each cell also sees how it compares with its brightest of the frames
    # before (features now minus their max over the last N-1 frames): "is this the peak?"
    spatial_peak: bool = False
    # cnn, with spatial_history: the encoder also sees each frame minus its per-pixel max over the
    # N-1 frames before (as DQN max-pools Atari frames). A revisited slice renders identically, so
    # at a dot's brightest slice this is exactly zero and one slice past it negative: the peak
    # test at full resolution, before GroupNorm and striding blur it.
    input_peak: bool = False
    spatial_coords: bool = False  # heatmap: the query also scores each cell's (x, y) position
    label_smoothing: float = 0.1
    aux_category: float = 0.0  # weight of an auxiliary loss predicting the click category
    # heatmap: weight of an auxiliary loss pointing, at every step, at the item being worked on
    # (where the task knows its place), e.g. the next dot of the requested colour while navigating.
    aux_target: float = 0.0
    # Weight of an auxiliary loss predicting, from the transformer state, how far the view is from
    # that item along the data axis (e.g. slices from the dot's brightest, -3..3): where to turn
    # back and where to click depend on it, and only a comparison across frames shows it.
    aux_offset: float = 0.0
    # With aux_target: the state also reads the cells where that query points (softmax-weighted),
    # before any head decides: what the item looks like now and over its cell's history.
    target_read: bool = False
    n_offsets: int = 7  # offsets -3..3 (annobc.data.windows.OFFSET_MAX)
    change_weight: float = 1.0  # loss weight of steps whose click hits another element than the last
    # Loss weight of the first repeat after a change (the second step back after turning back).
    # Tried at 3 and not kept: fewer perfect colored-dot episodes (docs/training.md, sixth session).
    settle_weight: float = 1.0
    n_categories: int = 7

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
        if self.target_read and not self.aux_target:
            raise ValueError("target_read needs aux_target > 0 (it reads where that query points)")
        if self.aux_target and self.head != "heatmap":
            raise ValueError("aux_target needs head: heatmap (it points with the heatmap's cells)")
        if self.spatial_peak and self.spatial_history < 2:
            raise ValueError("spatial_peak needs spatial_history >= 2 (frames to compare with)")
        if self.input_peak and (self.spatial_history < 2 or self.encoder != "cnn"):
            raise ValueError("input_peak needs encoder: cnn and spatial_history >= 2")
        if not 0 <= self.spatial_history <= self.window:
            raise ValueError(f"spatial_history must be in 0..window ({self.window}), "
                             f"got {self.spatial_history}")

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
    # ~1M: small CNN + 4-layer temporal transformer, the CPU demo.
    "tiny": dict(encoder="cnn", cnn_channels=(16, 32, 64, 64), d_model=96, n_layers=4, n_heads=4),
    # ~5M: wider CNN, 6 layers.
    "small": dict(encoder="cnn", cnn_channels=(32, 64, 96, 96), d_model=192, n_layers=6, n_heads=6),
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
