"""The click policy: per-frame encoder -> causal transformer over K steps -> click head.

Reads top-down. ``ClickPolicy.forward(batch) -> Outputs`` over windows (training, teacher-forced
scoring; the loss is annobc.learning.loss's), ``predict`` the reference click of each window's last
step, and ``start`` / ``act`` the same policy one step at a time for many sessions, with its caches
(frame tokens, per-cell history), which is what closed-loop rollouts call. A batch is what
``annobc.data.windows.WindowDataset`` yields, collated:

    frames (B, K, H, W, 3) uint8    prev_xy (B, K, 2)    bos (B, K)    valid (B, K)

The model knows the screen size, not the tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from annobc.models.config import N_CATEGORIES, PolicyConfig
from annobc.models.encoders import make_encoder


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, k, d = x.shape
        # (b, k, 3d) -> (3, b, heads, k, d/heads)
        q, kk, v = self.qkv(x).view(b, k, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, kk, v, attn_mask=mask,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, k, d))  # (b, heads, k, d/h) -> (b, k, d)


class Block(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        d = cfg.d_model
        self.ln1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d),
                                 nn.Dropout(cfg.dropout))

    def forward(self, x, mask):
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


class CellHistory(nn.Module):
    """A causal temporal convolution over each cell's last N frames, added to its features.

    One frame cannot tell a dot at its brightest slice from the same dot one slice off, or a
    moving cell from a still one; the cell's own recent history can. The click heads and the target
    read see it through the cells; the frame tokens do not, so that a step's state depends only on
    its window (which keeps one-step inference equal to a pass over the window). The output
    convolution starts at zero, so the module starts as the identity.
    """

    def __init__(self, channels: int, frames: int, hidden: int = 16):
        super().__init__()
        self.frames = frames
        self.mix = nn.Conv3d(channels, hidden, (frames, 1, 1))
        self.out = nn.Conv3d(hidden, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, cells: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(b, k, C, h, w) maps of consecutive frames, (b, k) valid -> the last k - N + 1 steps'
        maps with history, (b, k - N + 1, C, h, w). Callers left-pad with N - 1 invalid frames to
        get all k."""
        x = (cells * valid[:, :, None, None, None]).transpose(1, 2)  # (b, C, k, h, w)
        y = self.out(F.gelu(self.mix(x))).transpose(1, 2)  # (b, k - N + 1, C, h, w)
        return cells[:, self.frames - 1:] + y


@dataclass
class Outputs:
    """What one pass over windows computes; the loss and the click samplers read it."""

    h: torch.Tensor  # (b, k, d) states after the target read
    cells: torch.Tensor | None  # (b, k, C, h, w) cell features (with history), cells head only
    logits: dict[str, torch.Tensor]  # xy: x (b, k, W), y (b, k, H); cells: cell (b, k, h*w)
    target: torch.Tensor | None  # (b, k, h*w) the target query's cell scores (target_head)
    category: torch.Tensor  # (b, k, N_CATEGORIES) the auxiliary category head


@dataclass
class ActState:
    """Rolling per-session caches of :meth:`ClickPolicy.act`, newest step last."""

    tokens: torch.Tensor  # (n, K, d) frame tokens
    prev: torch.Tensor  # (n, K, 2) the click before each step
    bos: torch.Tensor  # (n, K) the step is an episode's first
    valid: torch.Tensor  # (n, K)
    maps: torch.Tensor | None  # (n, N, C, h, w) the last N raw cell maps (cell_history)
    maps_valid: torch.Tensor | None  # (n, N)

    def clear(self, rows) -> None:
        """Forget what sessions ``rows`` have seen (a new session takes the rows over)."""
        self.valid[rows] = False
        if self.maps_valid is not None:
            self.maps_valid[rows] = False


class ClickPolicy(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        d, W, H = cfg.d_model, cfg.screen_w, cfg.screen_h
        self.encoder = make_encoder(cfg)
        c, self.stride = self.encoder.spatial_channels, self.encoder.spatial_stride
        self.grid = (-(-H // self.stride), -(-W // self.stride))  # (h, w) cells, ceil division
        self.history = CellHistory(c, cfg.cell_history) if cfg.cell_history else None
        self.prev_x = nn.Embedding(W, d)
        self.prev_y = nn.Embedding(H, d)
        self.bos = nn.Parameter(torch.randn(d) * 0.02)  # replaces the previous click at episode start
        self.pos = nn.Parameter(torch.randn(1, cfg.window, d) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        self.head_category = nn.Linear(d, N_CATEGORIES)
        if cfg.head == "xy":
            self.head_x = nn.Linear(d, W)
            self.head_y = nn.Linear(d, H)
        else:
            # Queries score each cell's features and position (e.g. the top-most of equal dots);
            # the offset inside the chosen cell comes from that cell's features and the state.
            self.query = nn.Linear(d, c + 2)
            self.offset_cell = nn.Linear(c, self.stride ** 2)
            self.offset_state = nn.Linear(d, self.stride ** 2)
        if cfg.target_head:
            self.target_query = nn.Linear(d, c + 2)
            self.target_read = nn.Linear(c, d)
            nn.init.zeros_(self.target_read.weight)  # starts as no read at all
            nn.init.zeros_(self.target_read.bias)

    # -- over windows ---------------------------------------------------------------------------
    def forward(self, batch: dict) -> Outputs:
        frames, valid = batch["frames"], batch["valid"]
        b, k = frames.shape[:2]
        token, cells = self.encoder(frames.flatten(0, 1))  # (b*k, d), (b*k, C, h, w)
        token = token.view(b, k, -1)
        cells = cells.view(b, k, *cells.shape[1:])  # (b*k, C, h, w) -> (b, k, C, h, w)
        if self.history is not None:
            pad = self.cfg.cell_history - 1  # every step sees N frames: left-pad with invalid ones
            cells = self.history(F.pad(cells, (0, 0, 0, 0, 0, 0, pad, 0)), F.pad(valid, (pad, 0)))
        h = self.temporal(token, batch["prev_xy"], batch["bos"], valid)
        return self.heads(h, cells if self.cfg.head == "cells" else None)

    def temporal(self, tokens: torch.Tensor, prev_xy: torch.Tensor, bos: torch.Tensor,
                 valid: torch.Tensor) -> torch.Tensor:
        """Frame tokens (b, k, d) + previous clicks -> causal transformer states (b, k, d)."""
        k = tokens.shape[1]
        prev = self.prev_x(prev_xy[..., 0]) + self.prev_y(prev_xy[..., 1])
        x = tokens + torch.where(bos.unsqueeze(-1), self.bos.expand_as(prev), prev) + self.pos[:, :k]
        eye = torch.eye(k, dtype=torch.bool, device=x.device)
        causal = torch.tril(torch.ones(k, k, dtype=torch.bool, device=x.device))
        # Attend to earlier valid steps (and always to itself, so padded rows stay finite).
        mask = ((causal & valid[:, None, :]) | eye).unsqueeze(1)  # (b, 1, k, k)
        for blk in self.blocks:
            x = blk(x, mask)
        return self.ln_f(x)

    def heads(self, h: torch.Tensor, cells: torch.Tensor | None) -> Outputs:
        target = None
        if self.cfg.target_head:
            target = self.cell_scores(self.target_query, h, cells)  # (b, k, h*w)
            read = torch.einsum("bkn,bkcn->bkc", target.softmax(-1), cells.flatten(3))  # (b, k, C)
            h = h + self.target_read(read)
        if self.cfg.head == "xy":
            logits = {"x": self.head_x(h), "y": self.head_y(h)}  # (b, k, W), (b, k, H)
        else:
            logits = {"cell": self.cell_scores(self.query, h, cells)}  # (b, k, h*w)
        return Outputs(h, cells, logits, target, self.head_category(h))

    def cell_scores(self, query: nn.Module, h: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
        """States (b, k, d) and cells (b, k, C, gh, gw) -> each cell's score (b, k, gh*gw)."""
        b, k, _, gh, gw = cells.shape
        ys = torch.linspace(-1, 1, gh, device=cells.device).view(gh, 1).expand(gh, gw)
        xs = torch.linspace(-1, 1, gw, device=cells.device).view(1, gw).expand(gh, gw)
        feats = torch.cat([cells, torch.stack([xs, ys]).expand(b, k, 2, gh, gw)], 2).flatten(3)
        q = query(h)  # (b, k, C + 2)
        return torch.einsum("bkc,bkcn->bkn", q, feats) / q.shape[-1] ** 0.5

    def offset_logits(self, out: Outputs, cell: torch.Tensor) -> torch.Tensor:
        """Where inside cell ``cell`` (b, k) indices: logits over its stride x stride pixels
        (b, k, stride**2), from that cell's features and the state."""
        feats = out.cells.flatten(3)  # (b, k, C, h*w)
        at = torch.gather(feats, 3, cell[:, :, None, None].expand(-1, -1, feats.shape[2], 1))[..., 0]
        return self.offset_cell(at) + self.offset_state(out.h)

    def pixel_of(self, cell: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
        """Cell and in-cell offset indices -> screen pixels (..., 2), clipped to the screen."""
        s, gw = self.stride, self.grid[1]
        x = (cell % gw) * s + offset % s
        y = (cell // gw) * s + offset // s
        return torch.stack([x.clamp(max=self.cfg.screen_w - 1), y.clamp(max=self.cfg.screen_h - 1)], -1)

    def cell_of(self, xy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Screen pixels (..., 2) -> their cell and in-cell offset indices (the cells head's classes)."""
        s = self.stride
        x, y = xy[..., 0], xy[..., 1]
        return (y // s) * self.grid[1] + x // s, (y % s) * s + x % s

    def sample(self, out: Outputs, temperature: float = 0.0,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """A click (b, 2) for each window's last step: argmax, or sampled at a temperature."""
        def pick(lg: torch.Tensor) -> torch.Tensor:
            if temperature <= 0:
                return lg.argmax(-1)
            probs = F.softmax(lg.float() / temperature, -1)
            return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

        if self.cfg.head == "xy":
            return torch.stack([pick(out.logits["x"][:, -1]), pick(out.logits["y"][:, -1])], -1)
        last = Outputs(out.h[:, -1:], out.cells[:, -1:], {}, None, out.category[:, -1:])
        cell = pick(out.logits["cell"][:, -1])  # (b,)
        offset = pick(self.offset_logits(last, cell[:, None])[:, 0])
        return self.pixel_of(cell, offset)

    @torch.no_grad()
    def predict(self, batch: dict, temperature: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """The click (x, y) for the LAST step of each window (the reference for :meth:`act`)."""
        return self.sample(self(batch), temperature, generator)

    # -- one step at a time ---------------------------------------------------------------------
    def start(self, n: int, device: torch.device | str = "cpu") -> ActState:
        """Empty caches for ``n`` sessions."""
        k, d = self.cfg.window, self.cfg.d_model
        maps = valid_maps = None
        if self.history is not None:
            c, (gh, gw) = self.encoder.spatial_channels, self.grid
            maps = torch.zeros(n, self.cfg.cell_history, c, gh, gw, device=device)
            valid_maps = torch.zeros(n, self.cfg.cell_history, dtype=torch.bool, device=device)
        return ActState(torch.zeros(n, k, d, device=device),
                        torch.zeros(n, k, 2, dtype=torch.long, device=device),
                        torch.zeros(n, k, dtype=torch.bool, device=device),
                        torch.zeros(n, k, dtype=torch.bool, device=device), maps, valid_maps)

    @torch.no_grad()
    def observe(self, state: ActState, rows: torch.Tensor, frames: torch.Tensor,
                prev_xy: torch.Tensor) -> Outputs:
        """Sessions ``rows`` (m,) see a new frame each (m, H, W, 3) uint8, shown after the click
        ``prev_xy`` (m, 2) (-1 for an episode's first frame); returns their last step's outputs."""
        first = prev_xy[:, 0] < 0
        state.clear(rows[first])  # an episode's first frame: nothing before it counts
        token, cells = self.encoder(frames)  # (m, d), (m, C, h, w)
        if self.history is not None:
            state.maps[rows] = torch.cat([state.maps[rows, 1:], cells[:, None]], 1)
            state.maps_valid[rows] = F.pad(state.maps_valid[rows, 1:], (0, 1), value=True)
            cells = self.history(state.maps[rows], state.maps_valid[rows])[:, 0]

        def push(buf: torch.Tensor, new: torch.Tensor) -> None:
            buf[rows] = torch.cat([buf[rows, 1:], new[:, None]], 1)

        push(state.tokens, token)
        push(state.prev, prev_xy.clamp(min=0))
        push(state.bos, first)
        push(state.valid, torch.ones_like(first))
        h = self.temporal(state.tokens[rows], state.prev[rows], state.bos[rows], state.valid[rows])
        return self.heads(h[:, -1:], cells[:, None] if self.cfg.head == "cells" else None)

    @torch.no_grad()
    def act(self, state: ActState, rows: torch.Tensor, frames: torch.Tensor, prev_xy: torch.Tensor,
            temperature: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
        """:meth:`observe`, then the next click (m, 2) of each session."""
        return self.sample(self.observe(state, rows, frames, prev_xy), temperature, generator)

    def num_params(self, encoder_only: bool = False) -> int:
        mod = self.encoder if encoder_only else self
        return sum(p.numel() for p in mod.parameters())
