"""Per-frame image encoders: a small CNN for CPU and a DINOv2-style ViT.

Each encoder maps frames (N, H, W, 3) uint8 to a frame token (N, d_model) and a cell map
(N, C, h, w) that the cells head reads. The ViT uses timm's parameter names for
``vit_small_patch14_dinov2`` / ``vit_base_patch14_dinov2`` (and DINOv2's own), so their weights load
from a file on disk. timm itself is not imported: on the CPU build of torch this project pins, timm
needs a torchvision that cannot be installed beside it.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from annobc.models.config import PolicyConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_float(frames: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float, ImageNet-normalised."""
    x = frames.permute(0, 3, 1, 2).float().div_(255.0)  # (N, 3, H, W)
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def conv_norm_act(a: int, b: int, kernel: int, stride: int) -> nn.Sequential:
    # No conv bias: the GroupNorm after it removes it (and Adam would amplify its zero gradient's
    # float noise into real updates). GroupNorm, not BatchNorm: results must not depend on how a
    # batch is split across processes.
    return nn.Sequential(nn.Conv2d(a, b, kernel, stride=stride, padding=(kernel - stride + 1) // 2,
                                   bias=False),
                         nn.GroupNorm(min(8, b), b), nn.GELU())


class CNNEncoder(nn.Module):
    """A stride-4 patch stem and one 3x3 convolution give the cell map (stride 4, the placement
    resolution); stride-2 stages after it widen the context for the frame token. Nothing runs at
    full screen resolution: the stem is where a conv stack at full resolution spent its time."""

    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        c = cfg.cnn_channels
        self.stem = nn.Sequential(conv_norm_act(3, c[0], 4, 4), conv_norm_act(c[0], c[0], 3, 1))
        self.stages = nn.ModuleList(conv_norm_act(a, b, 3, 2) for a, b in zip(c[:-1], c[1:]))
        h, w = math.ceil(cfg.screen_h / 4), math.ceil(cfg.screen_w / 4)
        for _ in c[1:]:
            h, w = (h + 1) // 2, (w + 1) // 2
        self.to_token = nn.Linear(c[-1] * h * w, cfg.d_model)
        self.spatial_channels = c[0]
        self.spatial_stride = 4

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frames (N, H, W, 3) uint8 -> token (N, d_model), cell map (N, C, ceil(H/4), ceil(W/4))."""
        x = to_float(frames)
        x = F.pad(x, (0, -x.shape[3] % 4, 0, -x.shape[2] % 4))  # to whole 4x4 patches
        cells = self.stem(x)  # (N, C, H/4, W/4)
        x = cells
        for stage in self.stages:
            x = stage(x)
        token = self.to_token(x.flatten(1))  # (N, C'*h'*w') -> (N, d_model)
        return token, cells


# -- DINOv2-style ViT (timm naming) ---------------------------------------------------------------
class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x):
        return self.proj(x)  # (N, dim, h, w)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        qkv = self.qkv(x).view(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # (n, heads, t, c/heads)
        return self.proj(y.transpose(1, 2).reshape(n, t, c))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float = 1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x):
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class ViTEncoder(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        p, dim = cfg.vit_patch, cfg.vit_dim
        self.patch = p
        self.grid = (math.ceil(cfg.screen_h / p), math.ceil(cfg.screen_w / p))
        self.patch_embed = PatchEmbed(p, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + self.grid[0] * self.grid[1], dim) * 0.02)
        self.blocks = nn.ModuleList(ViTBlock(dim, cfg.vit_heads) for _ in range(cfg.vit_depth))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.to_token = nn.Linear(2 * dim, cfg.d_model)
        self.spatial_channels = dim
        self.spatial_stride = p
        if cfg.pretrained:
            load_pretrained_vit(self, cfg.pretrained)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_float(frames)
        gh, gw = self.grid
        x = F.pad(x, (0, gw * self.patch - x.shape[3], 0, gh * self.patch - x.shape[2]))
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # (N, gh*gw, dim)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], 1) + self.pos_embed
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)
        cls, patches = x[:, 0], x[:, 1:]
        token = self.to_token(torch.cat([cls, patches.mean(1)], -1))  # (N, d_model)
        spatial = patches.transpose(1, 2).reshape(x.shape[0], -1, gh, gw)  # (N, dim, gh, gw)
        return token, spatial


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
        for key in ("model", "state_dict", "teacher"):
            if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
                sd = sd[key]
    out = {}
    for k, v in sd.items():
        for prefix in ("module.", "backbone.", "model.", "encoder."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        out[k] = v
    return out


def resize_pos_embed(pos: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """(1, 1 + n, dim) with a square n -> (1, 1 + gh*gw, dim), bicubic, as timm does."""
    cls, rest = pos[:, :1], pos[:, 1:]
    n = rest.shape[1]
    side = int(round(math.sqrt(n)))
    if side * side != n:
        raise ValueError(f"pretrained pos_embed has {n} patch positions, not a square grid")
    if (side, side) == tuple(grid):
        return pos
    rest = rest.reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, dim, side, side)
    rest = F.interpolate(rest.float(), size=grid, mode="bicubic", align_corners=False)
    return torch.cat([cls, rest.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], -1)], 1)


def load_pretrained_vit(enc: ViTEncoder, path: str) -> dict:
    """Load timm/DINOv2 ViT weights from a file; random init with one warning if it is absent."""
    p = Path(path).expanduser()
    if not p.exists():
        warnings.warn(f"pretrained weights {p} not found; the ViT encoder starts from random init",
                      stacklevel=2)
        return {"loaded": 0}
    sd = _read_state_dict(p)
    if "pos_embed" in sd:
        sd["pos_embed"] = resize_pos_embed(sd["pos_embed"], enc.grid)
    own = enc.state_dict()
    usable = {k: v for k, v in sd.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError(f"{p} holds no tensor matching this ViT (dim {enc.cls_token.shape[-1]})")
    enc.load_state_dict(usable, strict=False)
    skipped = sorted(set(sd) - set(usable))
    return {"loaded": len(usable), "skipped": skipped}


def make_encoder(cfg: PolicyConfig) -> nn.Module:
    return CNNEncoder(cfg) if cfg.encoder == "cnn" else ViTEncoder(cfg)
