"""The objective (annobc.learning.loss): which steps count, how they weigh, and its terms."""

import pytest
import torch

from annobc.learning import ClickLoss, LossConfig
from annobc.models import ClickPolicy, PolicyConfig
from tests.models.test_policy import HEADS, TINY, make_batch


@pytest.mark.parametrize("head", HEADS)
def test_loss_and_backward(head):
    obj = ClickLoss(ClickPolicy(PolicyConfig(head=head, **TINY)))
    loss, info = obj(make_batch())
    loss.backward()
    assert torch.isfinite(loss) and info["nll"] > 0
    assert {"loss_x", "loss_y"} <= set(info) if head == "xy" else {"loss_cell", "loss_offset"} <= set(info)
    assert all(p.grad is not None for n, p in obj.model.named_parameters() if "head_category" in n)


@pytest.mark.parametrize("head", HEADS)
def test_loss_ignores_the_targets_of_learner_steps(head):
    """Takeover episodes: a policy's own clicks are history (prev_xy), never targets."""
    obj = ClickLoss(ClickPolicy(PolicyConfig(head=head, **TINY)))
    batch = make_batch()
    batch["imitate"] = torch.ones_like(batch["valid"])
    batch["imitate"][:, 1] = False
    a, _ = obj(batch)
    other = dict(batch, xy=batch["xy"].clone())
    other["xy"][:, 1] = 0
    b, _ = obj(other)
    assert torch.allclose(a, b)
    other["xy"][:, 2] = 0
    c, _ = obj(other)
    assert not torch.allclose(a, c)


def test_loss_ignores_padding_and_uses_category_weights():
    m = ClickPolicy(PolicyConfig(head="xy", **TINY))
    batch = make_batch()
    plain, _ = ClickLoss(m, LossConfig(category=0.0))(batch)
    moved = dict(batch, xy=batch["xy"].clone())
    moved["xy"][0, 0] = 0  # a padded step of window 0
    same, _ = ClickLoss(m, LossConfig(category=0.0))(moved)
    assert torch.allclose(plain, same)
    doubled, _ = ClickLoss(m, LossConfig(category=0.0), torch.full((7,), 2.0))(batch)
    assert torch.allclose(doubled, 2 * plain)


def test_change_weight_scales_the_loss_of_steps_whose_action_changes():
    m = ClickPolicy(PolicyConfig(head="xy", **TINY))
    batch = make_batch()
    base, _ = ClickLoss(m, LossConfig(category=0.0))(batch)
    batch["changed"][:] = True
    tripled, _ = ClickLoss(m, LossConfig(category=0.0, change_weight=3.0))(batch)
    assert torch.allclose(tripled, 3 * base)


def test_mistakes_weight_keeps_wrong_clicks_as_history_only():
    m = ClickPolicy(PolicyConfig(head="xy", **TINY))
    batch = make_batch()
    batch["is_mistake"][:, 2] = True
    objective = ClickLoss(m, LossConfig(category=0.0, target=0.0, mistakes=0.0))
    a, _ = objective(batch)
    other = dict(batch, xy=batch["xy"].clone())
    other["xy"][:, 2] = 0  # another target at the mistake steps: no effect
    assert torch.allclose(a, objective(other)[0])
    other["xy"][:, 3] = 0  # at the other steps: an effect
    assert not torch.allclose(a, objective(other)[0])
    imitated, _ = ClickLoss(m, LossConfig(category=0.0, target=0.0))(batch)
    assert imitated > a


def test_the_target_term_points_the_target_query_at_the_item():
    torch.manual_seed(0)
    m = ClickPolicy(PolicyConfig(head="cells", target_head=True, **TINY))
    obj = ClickLoss(m, LossConfig(target=1.0))
    batch = make_batch(b=2)
    batch["target_xy"][:] = torch.tensor([120, 20])
    opt = torch.optim.Adam(m.parameters(), 1e-2)
    first = None
    for _ in range(30):
        loss, info = obj(batch)
        first = first or info["loss_target"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert info["loss_target"] < 0.5 * first
    cell, _ = m.cell_of(torch.tensor([120, 20]))
    assert (m(batch).target[:, -1].argmax(-1) == cell).all()
    none = dict(batch, target_xy=torch.full_like(batch["target_xy"], -1))
    assert "loss_target" not in obj(none)[1]


def test_both_shipped_configs_train_end_to_end_on_tiny_inputs():
    """The CPU preset and the paper preset (vit-b, x/y head) run through the same code: a forward,
    the objective and a backward step each, at tiny dimensions."""
    from annobc.models import PRESETS, preset
    from annobc.train.config import load_config, shipped_configs

    for name in shipped_configs():
        cfg = load_config(name)
        dims = dict(cfg.model.overrides, window=cfg.data.window)
        if PRESETS[cfg.model.preset]["encoder"] == "vit":
            dims.update(vit_dim=24, vit_depth=1, vit_heads=2, d_model=16, n_layers=1, n_heads=2)
        model = ClickPolicy(preset(cfg.model.preset, screen_w=64, screen_h=48, **dims))
        batch = make_batch(b=2, k=model.cfg.window, w=64, h=48)
        for key in ("xy", "prev_xy", "target_xy"):  # inside the 64x48 screen
            batch[key] %= 48
        loss, info = ClickLoss(model, cfg.loss)(batch)
        loss.backward()
        assert torch.isfinite(loss) and info["nll"] > 0, name
