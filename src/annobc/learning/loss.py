"""The behavioural-cloning objective: what the policy is trained to predict, and how each part
weighs. Configured by the ``loss:`` section of a training config (:class:`LossConfig`); the model
(annobc.models) holds the architecture only.

    ClickLoss(model, cfg, category_weights)(batch) -> (loss, info)

The click term is the negative log-likelihood of the demonstrated click: x and y (xy head), or
its cell and the pixel inside the cell (cells head). Auxiliary terms: the click's category, and
(with the model's target head) the cell of the item being worked on (the step's target point).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from annobc.models import ClickPolicy
from annobc.models.policy import Outputs


@dataclass
class LossConfig:
    label_smoothing: float = 0.1
    category: float = 0.2  # weight of the auxiliary click-category term
    target: float = 0.5  # weight of pointing at the item being worked on (model.target_head)
    # Keyframe weighting (cf. Wen et al. 2021): repeating the last action is right most of the time,
    # so the steps whose click hits another element than the click before carry the signal.
    change_weight: float = 1.0
    # Loss weight per click category = frequency ** -this (0: unweighted), from the dataset card.
    category_weighting: float = 0.0
    # Weight of the clicks that made a wrong annotation (a persona's deliberate slips and
    # off-target clicks): 1 imitates them like any other click; 0 keeps them as history only, so
    # the policy learns the correction that follows a mistake but not the mistake (the screen
    # never shows when a slip is coming).
    mistakes: float = 1.0


class ClickLoss(nn.Module):
    """The model and its objective in one module (DDP wraps this, so it sees the whole graph)."""

    def __init__(self, model: ClickPolicy, cfg: LossConfig | None = None,
                 category_weights: torch.Tensor | None = None):
        super().__init__()
        self.model, self.cfg = model, cfg or LossConfig()
        n = model.head_category.out_features
        w = torch.ones(n) if category_weights is None else torch.as_tensor(category_weights).float()
        self.register_buffer("category_weights", w, persistent=False)

    def forward(self, batch: dict, predict: bool = False) -> tuple[torch.Tensor, dict]:
        """Loss over every valid demonstrated step (a learner's clicks are context, not targets);
        ``predict``: also the argmax click of each window's last step as info["pred"] (b, 2)."""
        cfg, model = self.cfg, self.model
        out = model(batch)
        sel = batch["valid"] & batch["imitate"] if "imitate" in batch else batch["valid"]
        xy = batch["xy"]
        click, nll, info = self.click_terms(out, xy, sel)
        weights = self.category_weights[batch["category"][sel]]
        if cfg.change_weight != 1.0:
            weights = weights * torch.where(batch["changed"][sel], cfg.change_weight, 1.0)
        if cfg.mistakes != 1.0:
            weights = weights * torch.where(batch["is_mistake"][sel], cfg.mistakes, 1.0)
        # Normalised by the number of window positions, not of selected ones, so that the loss of a
        # batch split across processes (DDP averages gradients) equals that of the whole batch.
        denom = sel.numel()
        loss = (click * weights).sum() / denom
        lc = F.cross_entropy(out.category[sel], batch["category"][sel], reduction="none")
        loss = loss + cfg.category * lc.sum() / denom
        info["loss_category"] = lc.mean().item()
        if out.target is not None and "target_xy" in batch:
            txy = batch["target_xy"]
            has = sel & (txy[..., 0] >= 0)
            if has.any():
                cell, _ = model.cell_of(txy.clamp(min=0))
                lt = F.cross_entropy(out.target[has], cell[has], reduction="none")
                loss = loss + cfg.target * lt.sum() / denom
                info["loss_target"] = lt.mean().item()
        info["nll"] = nll
        info["loss"] = loss.item()
        if predict:
            with torch.no_grad():
                info["pred"] = model.sample(out)
        return loss, info

    def click_terms(self, out: Outputs, xy: torch.Tensor, sel: torch.Tensor
                    ) -> tuple[torch.Tensor, float, dict]:
        """Per-step click losses (n,), their mean unsmoothed NLL (nats per click, comparable across
        heads), and per-term diagnostics."""
        ls, model = self.cfg.label_smoothing, self.model
        if model.cfg.head == "xy":
            terms = {"x": (out.logits["x"][sel], xy[..., 0][sel]),
                     "y": (out.logits["y"][sel], xy[..., 1][sel])}
        else:
            cell, offset = model.cell_of(xy)
            terms = {"cell": (out.logits["cell"][sel], cell[sel]),
                     "offset": (model.offset_logits(out, cell)[sel], offset[sel])}
        per_step = sum(F.cross_entropy(lg, t, label_smoothing=ls, reduction="none")
                       for lg, t in terms.values())
        with torch.no_grad():
            exact = {k: F.cross_entropy(lg, t).item() if len(t) else 0.0
                     for k, (lg, t) in terms.items()}
        return per_step, sum(exact.values()), {f"loss_{k}": v for k, v in exact.items()}
