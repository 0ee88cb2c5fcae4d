"""The click policy: per-frame encoder -> causal transformer over K steps -> click head.

Reads top-down: ``ClickPolicy.forward(batch) -> (loss, info)`` for training, ``predict`` for
rollouts. A batch is what ``annobc.data.windows.WindowDataset`` yields, collated:

    frames (B, K, H, W, 3) uint8    prev_xy (B, K, 2)    bos (B, K)    valid (B, K)
    xy (B, K, 2) targets            category (B, K) click category of the target
    changed (B, K) the target hits another element than the previous click (for change_weight)
    after_change (B, K) the first target repeating the previous click after a change (settle_weight)

The model knows the screen size, not the tasks.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from annobc.models.config import PolicyConfig
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


class SpatialHistory(nn.Module):
    """A causal temporal convolution over each heatmap cell's last N frames, added to its features.

    Per-frame features cannot tell a dot at its brightest slice from the same dot one slice off;
    the cell's own history can (it was dimmer on the slices just visited). With ``peak``, the
    convolution also sees each cell's features now minus their maximum over the N-1 frames before:
    a dot that was brighter two slices ago is then one subtraction away instead of one the
    convolution must learn. Zero-initialised output, so it starts as the identity.
    """

    def __init__(self, channels: int, frames: int, hidden: int = 16, peak: bool = False):
        super().__init__()
        self.frames = frames
        self.mix = nn.Conv3d(channels, hidden, (frames, 1, 1))
        self.peak = nn.Conv3d(channels, hidden, 1, bias=False) if peak else None
        self.out = nn.Conv3d(hidden, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, spatial: torch.Tensor, valid: torch.Tensor, last: bool = False) -> torch.Tensor:
        """(b, k, C, h, w) features of consecutive frames, (b, k) valid -> (b, k, C, h, w), or only
        the last step's (b, 1, C, h, w) when ``last`` (rollouts: N times less work)."""
        x = (spatial * valid[:, :, None, None, None]).transpose(1, 2)  # (b, C, k, h, w)
        if last:
            x = x[:, :, -self.frames:]
            spatial = spatial[:, -1:]
        pad = self.frames - 1 if not last else self.frames - x.shape[2]
        x = F.pad(x, (0, 0, 0, 0, pad, 0))  # left-pad time: output k sees k-N+1..k
        pre = self.mix(x)  # (b, hidden, k or 1, h, w)
        if self.peak is not None:
            # Each step's maximum over the N-1 frames before it, (b, C, k or 1, h, w); invalid and
            # padded frames count as zeros, as the convolution sees them.
            before = F.max_pool3d(x[:, :, :-1], (self.frames - 1, 1, 1), stride=1)
            pre = pre + self.peak(x[:, :, self.frames - 1:] - before)
        y = self.out(F.gelu(pre))  # (b, C, k or 1, h, w)
        return spatial + y.transpose(1, 2)


class ClickPolicy(nn.Module):
    def __init__(self, cfg: PolicyConfig):
        super().__init__()
        self.cfg = cfg
        d, W, H = cfg.d_model, cfg.screen_w, cfg.screen_h
        self.encoder = make_encoder(cfg)
        self.prev_x = nn.Embedding(W, d)
        self.prev_y = nn.Embedding(H, d)
        self.bos = nn.Parameter(torch.randn(d) * 0.02)  # replaces the previous click at episode start
        self.pos = nn.Parameter(torch.randn(1, cfg.window, d) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(d)
        if cfg.head == "xy":
            self.head_x = nn.Linear(d, W)
            self.head_y = nn.Linear(d, H)
            self.target_query = None
        else:
            # Coordinate channels let the query prefer positions (e.g. the top-most of equal dots).
            coords = 2 if cfg.spatial_coords else 0
            self.query = nn.Linear(d, self.encoder.spatial_channels + coords)
            # A second query over the same cells: where is the item being worked on?
            self.target_query = (nn.Linear(d, self.encoder.spatial_channels + coords)
                                 if cfg.aux_target > 0 else None)
        c = self.encoder.spatial_channels
        if cfg.target_read:
            self.target_read = nn.Linear(c, d)
            nn.init.zeros_(self.target_read.weight)  # starts as no read at all
            nn.init.zeros_(self.target_read.bias)
        else:
            self.target_read = None
        self.history = (SpatialHistory(c, cfg.spatial_history, peak=cfg.spatial_peak)
                        if cfg.spatial_history else None)
        # The transformer's button decisions (step on, turn back) need what the cells' history
        # sees, e.g. a dot that was brighter two slices ago: a max- and mean-pooled summary of it.
        self.summary = nn.Linear(2 * c, d) if cfg.spatial_history and cfg.spatial_summary else None
        self.head_category = nn.Linear(d, cfg.n_categories) if cfg.aux_category > 0 else None
        self.head_offset = nn.Linear(d, cfg.n_offsets) if cfg.aux_offset > 0 else None
        # Per-category loss weights (set from the training data; 1 = unweighted).
        self.register_buffer("category_weights", torch.ones(cfg.n_categories))

    # -- encoding -------------------------------------------------------------------------------
    def encode_frames(self, frames: torch.Tensor, before: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, H, W, 3) uint8 -> frame tokens (N, d) and spatial features (N, C, h, w). With
        input_peak, ``before``: each frame's per-pixel max over the frames before it (None:
        zeros, no frame before)."""
        if self.cfg.input_peak:
            return self.encoder(frames, torch.zeros_like(frames) if before is None else before)
        return self.encoder(frames)

    def frames_before(self, frames: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Consecutive frames (b, k, H, W, 3) uint8 -> each one's per-pixel max over the
        spatial_history-1 valid frames before it in the window (zeros where there are none)."""
        x = frames * valid[:, :, None, None, None].to(frames.dtype)  # invalid frames count as black
        n = self.cfg.spatial_history - 1
        before = torch.zeros_like(x)
        for j in range(1, x.shape[1]):
            before[:, j] = x[:, max(0, j - n):j].amax(1)
        return before

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

    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        frames, valid = batch["frames"], batch["valid"]
        b, k = frames.shape[:2]
        before = self.frames_before(frames, valid).flatten(0, 1) if self.cfg.input_peak else None
        # (b*k, H, W, 3) -> (b*k, d)
        token, spatial = self.encode_frames(frames.flatten(0, 1), before)
        token = token.view(b, k, -1)
        if spatial is not None:
            spatial = spatial.view(b, k, *spatial.shape[1:])  # (b*k, C, h, w) -> (b, k, C, h, w)
            spatial, token = self.cell_history(spatial, valid, token)
        h = self.temporal(token, batch["prev_xy"], batch["bos"], valid)
        return h, spatial

    def cell_history(self, spatial: torch.Tensor, valid: torch.Tensor, token: torch.Tensor,
                     last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame maps (b, k, C, h, w) of consecutive steps and their tokens (b, k, d) -> maps
        with each cell's history and tokens with its pooled summary, when configured. ``last``:
        only the last step's, (b, 1, C, h, w) and (b, 1, d)."""
        if last:
            token = token[:, -1:]
        if self.history is None:
            return (spatial[:, -1:] if last else spatial), token
        spatial = self.history(spatial, valid, last)
        if self.summary is not None:
            pooled = torch.cat([spatial.amax((-2, -1)), spatial.mean((-2, -1))], -1)  # (b, k, 2C)
            token = token + self.summary(pooled)
        return spatial, token

    def cell_scores(self, query: nn.Module, h: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
        """States (b, k, d) and cells (b, k, C, h, w) -> each cell's score for the query (b, k, h, w)."""
        if self.cfg.spatial_coords:
            b, k, _, h_, w_ = spatial.shape
            ys = torch.linspace(-1, 1, h_, device=spatial.device).view(h_, 1).expand(h_, w_)
            xs = torch.linspace(-1, 1, w_, device=spatial.device).view(1, w_).expand(h_, w_)
            spatial = torch.cat([spatial, torch.stack([xs, ys]).expand(b, k, 2, h_, w_)], 2)
        q = query(h)  # (b, k, C)
        return torch.einsum("bkc,bkchw->bkhw", q, spatial) / q.shape[-1] ** 0.5

    def read_target(self, h: torch.Tensor, spatial: torch.Tensor | None,
                    cells: torch.Tensor | None = None) -> torch.Tensor:
        """States (b, k, d) + what the cells (b, k, C, h, w) hold where the target query points
        (``cells``: the target query's scores (b, k, h, w), when already computed)."""
        if self.target_read is None:
            return h
        if cells is None:
            cells = self.cell_scores(self.target_query, h, spatial)
        att = cells.flatten(2).softmax(-1)  # (b, k, h*w)
        read = torch.einsum("bkn,bkcn->bkc", att, spatial.flatten(3))  # (b, k, C)
        return h + self.target_read(read)

    def click_logits(self, h: torch.Tensor, spatial: torch.Tensor | None) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        if cfg.head == "xy":
            return {"x": self.head_x(h), "y": self.head_y(h)}  # (b, k, W), (b, k, H)
        cells = self.cell_scores(self.query, h, spatial)
        b, k = cells.shape[:2]
        pix = F.interpolate(cells.flatten(0, 1).unsqueeze(1), size=(cfg.screen_h, cfg.screen_w),
                            mode="bilinear", align_corners=False)  # (b*k, 1, H, W)
        return {"pixel": pix.view(b, k, cfg.screen_h * cfg.screen_w)}

    # -- training -------------------------------------------------------------------------------
    def forward(self, batch: dict, predict: bool = False) -> tuple[torch.Tensor, dict]:
        """Loss over every valid demonstrated step; ``predict``: also the argmax click of each window's last
        step as info["pred"] (b, 2), from the same pass (teacher-forced evaluation)."""
        cfg = self.cfg
        h, spatial = self.encode(batch)
        # The target query's cell scores, once: the target read and the aux_target loss share them.
        cells = (self.cell_scores(self.target_query, h, spatial)
                 if self.target_query is not None else None)
        h_read = self.read_target(h, spatial, cells)
        logits = self.click_logits(h_read, spatial)
        # The loss covers demonstrated steps; a learner's clicks (takeover roll-ins) are context.
        valid = batch["valid"] & batch["imitate"] if "imitate" in batch else batch["valid"]
        xy = batch["xy"]
        ls = cfg.label_smoothing
        if cfg.head == "xy":
            lx = F.cross_entropy(logits["x"][valid], xy[..., 0][valid], label_smoothing=ls,
                                 reduction="none")
            ly = F.cross_entropy(logits["y"][valid], xy[..., 1][valid], label_smoothing=ls,
                                 reduction="none")
            per_step = lx + ly
            info = {"loss_x": lx.mean().item(), "loss_y": ly.mean().item()}
        else:
            target = xy[..., 1] * cfg.screen_w + xy[..., 0]
            pix = logits["pixel"][valid]  # (n, H*W)
            per_step = F.cross_entropy(pix, target[valid], label_smoothing=ls, reduction="none")
            with torch.no_grad():  # per-coordinate diagnostics: the marginals of the pixel map
                grid = pix.view(-1, cfg.screen_h, cfg.screen_w)
                mx, my = torch.logsumexp(grid, 1), torch.logsumexp(grid, 2)  # (n, W), (n, H)
                info = {"loss_pixel": per_step.mean().item(),
                        "loss_x": F.cross_entropy(mx, xy[..., 0][valid]).item(),
                        "loss_y": F.cross_entropy(my, xy[..., 1][valid]).item()}
        weights = self.category_weights[batch["category"][valid]]
        if cfg.change_weight != 1.0:
            # Keyframe weighting (cf. Wen et al. 2021): repeating the last action is right most of
            # the time, so the steps where the action changes carry the signal that must be seen.
            weights = weights * torch.where(batch["changed"][valid], cfg.change_weight, 1.0)
        if cfg.settle_weight != 1.0:
            weights = weights * torch.where(batch["after_change"][valid], cfg.settle_weight, 1.0)
        # Normalised by the number of window positions, not of valid ones, so that the loss of a
        # batch split across processes (DDP averages gradients) equals that of the whole batch.
        denom = valid.numel()
        loss = (per_step * weights).sum() / denom
        if self.head_category is not None:
            lc_all = F.cross_entropy(self.head_category(h_read)[valid], batch["category"][valid],
                                     reduction="none")
            lc = lc_all.mean()
            loss = loss + cfg.aux_category * lc_all.sum() / denom
            info["loss_category"] = lc.item()
        if self.target_query is not None and "target_xy" in batch:
            # Every step where the task knows the item being worked on: point at its cell.
            txy = batch["target_xy"]
            sel = valid & (txy[..., 0] >= 0)
            if sel.any():
                stride = cfg.screen_w // cells.shape[-1]
                idx = (txy[..., 1] // stride) * cells.shape[-1] + txy[..., 0] // stride
                lt = F.cross_entropy(cells.flatten(2)[sel], idx[sel], reduction="none")
                loss = loss + cfg.aux_target * lt.sum() / denom
                info["loss_target"] = lt.mean().item()
        if self.head_offset is not None and "target_offset" in batch:
            # Every step where the task knows how far the view is from the item being worked on.
            off = batch["target_offset"]
            sel = valid & (off >= 0)
            if sel.any():
                pred = self.head_offset(h_read)[sel]
                lo = F.cross_entropy(pred, off[sel], reduction="none")
                loss = loss + cfg.aux_offset * lo.sum() / denom
                info["loss_offset"] = lo.mean().item()
                info["acc_offset"] = (pred.argmax(-1) == off[sel]).float().mean().item()
        info["loss"] = loss.item()
        if predict:
            with torch.no_grad():
                info["pred"] = self.click_from_logits({k: v[:, -1] for k, v in logits.items()})
        return loss, info

    # -- acting ---------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, batch: dict, temperature: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """The click (x, y) for the LAST step of each window: argmax, or sampled at a temperature."""
        h, spatial = self.encode(batch)
        return self.sample_click(h[:, -1], spatial[:, -1] if spatial is not None else None,
                                 temperature, generator)

    @torch.no_grad()
    def sample_click(self, h: torch.Tensor, spatial: torch.Tensor | None, temperature: float = 0.0,
                     generator: torch.Generator | None = None) -> torch.Tensor:
        """A click (b, 2) from last-step states h (b, d) and that frame's spatial features."""
        h, spatial = h.unsqueeze(1), spatial.unsqueeze(1) if spatial is not None else None
        h = self.read_target(h, spatial)
        logits = {k: v[:, 0] for k, v in self.click_logits(h, spatial).items()}  # (b, n)
        return self.click_from_logits(logits, temperature, generator)

    def click_from_logits(self, logits: dict[str, torch.Tensor], temperature: float = 0.0,
                          generator: torch.Generator | None = None) -> torch.Tensor:
        """Click logits of one step, {name: (b, n)} -> clicks (b, 2): argmax, or sampled."""
        cfg = self.cfg

        def pick(lg: torch.Tensor) -> torch.Tensor:
            if temperature <= 0:
                return lg.argmax(-1)
            probs = F.softmax(lg.float() / temperature, -1)
            return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

        if cfg.head == "xy":
            return torch.stack([pick(logits["x"]), pick(logits["y"])], -1)
        p = pick(logits["pixel"])
        return torch.stack([p % cfg.screen_w, p // cfg.screen_w], -1)

    def num_params(self, encoder_only: bool = False) -> int:
        mod = self.encoder if encoder_only else self
        return sum(p.numel() for p in mod.parameters())
