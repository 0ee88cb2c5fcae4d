"""Teacher-forced metrics: the policy predicts each recorded click from the recorded history.

Every window's LAST step is scored (each step once, with its full history). A prediction is the
argmax click. Categories are those of the target click. Elements are hit-tested in the GUI variant
the window's episode was shown in (its layout: a click left of the canvas is a button in one variant
and canvas in another).

- ``accuracy`` (overall, and per category): a canvas target counts as hit within 5 px; a button
  target when the prediction hits the same button; an invalid target when the prediction hits
  nothing either.
- ``placement@2`` / ``placement@5``: canvas targets within 2 / 5 px.
- ``button_accuracy``: button targets (navigate, view, select, undo, done) on the same button.
- ``decision_accuracy``: select targets (class, tool, tab, animal, marker type, DIV) on the same button.
- ``validity``: the prediction hits an interactive element (a button or the canvas).
- ``nll``: the click's negative log-likelihood (nats), comparable across heads; ``loss_*`` the
  terms of the training objective (annobc.learning.loss).
"""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache

import numpy as np
import torch
from torch.utils.data import DataLoader

from annobc.data.store import EpisodeStore
from annobc.data.windows import WindowDataset
from annobc.learning.loss import ClickLoss, LossConfig
from annobc.gui import DEFAULT_VARIANT, Layout
from annobc.tasks.base import CATEGORIES
from annobc.tasks.registry import get_task_class

PLACE = CATEGORIES.index("place")
SELECT = CATEGORIES.index("select")
INVALID = CATEGORIES.index("invalid")


@lru_cache(maxsize=256)
def hit_map(task_id: str, width: int, height: int, variant: str = DEFAULT_VARIANT) -> np.ndarray:
    return Layout(width, height, [b.label for b in get_task_class(task_id).buttons], variant).hit_map


def score_predictions(task_ids_: list[str], pred: np.ndarray, target: np.ndarray,
                      category: np.ndarray, screen: tuple[int, int],
                      variants: list[str] | None = None) -> dict[str, np.ndarray]:
    """Per-step hit flags for predictions vs targets (arrays of shape (n, 2), (n, 2), (n,)),
    hit-tested in each step's GUI variant (``variants``, one per step; None: the default)."""
    w, h = screen
    n = len(pred)
    px, py = np.clip(pred[:, 0], 0, w - 1), np.clip(pred[:, 1], 0, h - 1)
    pred_el = np.empty(n, np.int64)
    tgt_el = np.empty(n, np.int64)
    for i, t in enumerate(task_ids_):
        hm = hit_map(t, w, h, variants[i] if variants is not None else DEFAULT_VARIANT)
        pred_el[i] = hm[py[i], px[i]]
        tgt_el[i] = hm[target[i, 1], target[i, 0]]
    dist = np.hypot(pred[:, 0] - target[:, 0], pred[:, 1] - target[:, 1])
    is_place = category == PLACE
    hit = np.where(is_place, (dist <= 5) & (pred_el == 0), pred_el == tgt_el)
    return {"hit": hit, "dist": dist, "valid_action": pred_el != -1, "same_element": pred_el == tgt_el,
            "target_element": tgt_el, "predicted_element": pred_el}


def summarise(rows: dict[str, np.ndarray]) -> dict:
    """Metrics from concatenated per-step arrays (hit, dist, valid_action, same_element, category)."""
    cat = rows["category"]
    out: dict = {"n": int(len(cat))}
    if not len(cat):
        return out
    place = cat == PLACE
    buttons = (cat != PLACE) & (cat != INVALID)
    out["accuracy"] = float(rows["hit"].mean())
    out["validity"] = float(rows["valid_action"].mean())
    if place.any():
        out["placement@2"] = float((rows["dist"][place] <= 2).mean())
        out["placement@5"] = float((rows["dist"][place] <= 5).mean())
    if buttons.any():
        out["button_accuracy"] = float(rows["same_element"][buttons].mean())
    if (cat == SELECT).any():
        out["decision_accuracy"] = float(rows["same_element"][cat == SELECT].mean())
    out["accuracy_by_category"] = {c: float(rows["hit"][cat == i].mean())
                                   for i, c in enumerate(CATEGORIES) if (cat == i).any()}
    out["count_by_category"] = {c: int((cat == i).sum()) for i, c in enumerate(CATEGORIES)
                                if (cat == i).any()}
    return out


def button_accuracy(task_id: str, rows: dict[str, np.ndarray]) -> dict:
    """Per button of the task, over the steps whose target is that button: how often the
    prediction hits it, and how often it lands on each other element instead (the decision that
    goes wrong, e.g. DONE predicted as another navigation click)."""
    labels = [b.label for b in get_task_class(task_id).buttons]
    name = {-1: "nothing", 0: "canvas"} | {i + 1: lab for i, lab in enumerate(labels)}
    cat = rows["category"]
    is_button = (cat != PLACE) & (cat != INVALID)
    out = {}
    for code in sorted(set(rows["target_element"][is_button].tolist())):
        sel = is_button & (rows["target_element"] == code)
        wrong = rows["predicted_element"][sel][~rows["same_element"][sel]]
        confused = {name[int(c)]: int(n) for c, n in zip(*np.unique(wrong, return_counts=True))}
        out[name[code]] = {"n": int(sel.sum()), "accuracy": float(rows["same_element"][sel].mean()),
                           "predicted_instead": dict(sorted(confused.items(), key=lambda kv: -kv[1]))}
    return out


def split_cap(cap: int | None, variants: list[str]) -> list[tuple[str, int | None]]:
    """A task's window cap shared evenly by the variants its episodes were shown in."""
    k = len(variants)
    return [(v, None if cap is None else cap // k + (i < cap % k)) for i, v in enumerate(variants)]


@torch.no_grad()
def teacher_forced(model, store: EpisodeStore, split: str = "val", max_windows: int | None = None,
                   batch_size: int = 32, device: str | torch.device = "cpu", seed: int = 0,
                   tasks: list[str] | None = None, loss: LossConfig | None = None,
                   return_rows: bool = False) -> dict:
    """Teacher-forced metrics over a split: overall, and per task; ``loss``: the objective whose
    terms are reported (default: :class:`LossConfig`'s); ``return_rows``: also the per-window flags
    the figures are means of, as out["rows"] (numpy arrays, one entry per scored window: task,
    variant, category, hit, dist, valid_action, same_element), e.g. for bootstrap intervals.

    ``max_windows`` caps the windows of EACH task (so every task's figures rest on the same number
    of windows, however its episodes are weighted in training); None: every window of the split.
    A task shown in several GUI variants has its cap split evenly over them (windows are drawn per
    variant, so each is hit-tested in its own layout); ``by_variant``: the figures per variant.
    """
    cfg = model.cfg
    objective = ClickLoss(model, loss).to(device)
    was_training = model.training
    model.eval()
    names = store.tasks
    screen = (cfg.screen_w, cfg.screen_h)
    cols = defaultdict(list)
    losses = defaultdict(list)
    groups = [(task, variant, cap) for task in (tasks if tasks is not None else store.tasks)
              for variant, cap in split_cap(max_windows, store.variants(split, [task])) if cap != 0]
    for task, variant, cap in groups:
        ds = WindowDataset(store, split, window=cfg.window, seed=seed, tasks=[task], variants=[variant])
        seen = 0
        for batch in DataLoader(ds, batch_size=batch_size):
            if cap is not None and len(batch["task"]) > cap - seen:  # exactly the cap
                batch = {k: v[:cap - seen] for k, v in batch.items()}
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.no_grad():
                _, info = objective(batch, predict=True)
            pred = info.pop("pred").cpu().numpy()
            n_valid = int(batch["valid"].sum())
            for k, v in info.items():
                if k.startswith("loss") or k == "nll":
                    losses[k].append((v, n_valid))
            target = batch["xy"][:, -1].cpu().numpy()
            category = batch["category"][:, -1].cpu().numpy()
            task_list = [names[int(t)] for t in batch["task"].cpu()]
            flags = score_predictions(task_list, pred, target, category, screen, [variant] * len(pred))
            for k, v in flags.items():
                cols[k].append(v)
            cols["category"].append(category)
            cols["task"].append(np.array(task_list))
            cols["variant"].append(np.array([variant] * len(pred)))
            seen += len(pred)
            if cap is not None and seen >= cap:
                break
    model.train(was_training)
    rows = {k: np.concatenate(v) for k, v in cols.items()}
    out = summarise(rows)
    for k, pairs in losses.items():
        out[k] = float(sum(v * n for v, n in pairs) / max(1, sum(n for _, n in pairs)))
    out["by_task"] = {}
    for t in sorted(set(rows["task"])):
        mask = rows["task"] == t
        task_rows = {k: v[mask] for k, v in rows.items() if k != "task"}
        out["by_task"][t] = summarise(task_rows) | {"accuracy_by_button": button_accuracy(t, task_rows)}
    out["by_variant"] = {v: summarise({k: c[rows["variant"] == v] for k, c in rows.items()
                                       if k != "task"}) for v in sorted(set(rows["variant"]))}
    if return_rows:
        out["rows"] = rows
    return out
