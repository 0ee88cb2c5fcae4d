"""The click policy (annobc.models): shapes, masks, heads, the cell history, the target head, and
one-step inference (start / act) equal to the pass over a window."""

import warnings

import pytest
import torch
from safetensors.torch import save_file

from annobc.learning import ClickLoss
from annobc.models import PRESETS, ClickPolicy, PolicyConfig, preset
from annobc.models.config import N_CATEGORIES
from annobc.models.encoders import ViTEncoder, load_pretrained_vit
from annobc.tasks.base import CATEGORIES

TINY = dict(cnn_channels=(4, 8, 8), d_model=16, n_layers=2, n_heads=2, window=4)
HEADS = ("xy", "cells")


def make_batch(b=3, k=4, w=160, h=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = {
        "frames": torch.randint(0, 256, (b, k, h, w, 3), dtype=torch.uint8, generator=g),
        "prev_xy": torch.randint(0, 100, (b, k, 2), generator=g),
        "xy": torch.randint(0, 100, (b, k, 2), generator=g),
        "bos": torch.zeros(b, k, dtype=torch.bool),
        "valid": torch.ones(b, k, dtype=torch.bool),
        "category": torch.randint(0, 7, (b, k), generator=g),
        "changed": torch.zeros(b, k, dtype=torch.bool),
        "is_mistake": torch.zeros(b, k, dtype=torch.bool),
        "target_xy": torch.randint(0, 100, (b, k, 2), generator=g),
    }
    batch["valid"][0, : k // 2] = False  # the episode starts halfway through window 0
    batch["bos"][0, k // 2] = True
    return batch


def test_the_category_count_is_the_tasks():
    assert N_CATEGORIES == len(CATEGORIES)


@pytest.mark.parametrize("head", HEADS)
def test_forward_shapes(head):
    m = ClickPolicy(PolicyConfig(head=head, **TINY))
    out = m(make_batch())
    assert out.h.shape == (3, 4, 16) and out.category.shape == (3, 4, N_CATEGORIES)
    if head == "xy":
        assert out.logits["x"].shape == (3, 4, 160) and out.logits["y"].shape == (3, 4, 128)
    else:
        assert out.cells.shape == (3, 4, 4, 32, 40) and out.logits["cell"].shape == (3, 4, 32 * 40)


@pytest.mark.parametrize("head", HEADS)
def test_predict_is_inside_the_screen_and_sampling_varies(head):
    m = ClickPolicy(PolicyConfig(head=head, **TINY)).eval()
    batch = make_batch()
    p = m.predict(batch)
    assert p.shape == (3, 2) and (p[:, 0] < 160).all() and (p[:, 1] < 128).all() and (p >= 0).all()
    g = torch.Generator().manual_seed(0)
    draws = {tuple(m.predict(batch, temperature=5.0, generator=g)[1].tolist()) for _ in range(8)}
    assert len(draws) > 1


def test_a_pixel_is_its_cell_and_offset():
    m = ClickPolicy(PolicyConfig(head="cells", **TINY))
    xy = torch.tensor([[0, 0], [159, 127], [37, 90], [4, 3]])
    cell, off = m.cell_of(xy)
    assert torch.equal(m.pixel_of(cell, off), xy)
    assert cell.max() < 32 * 40 and off.max() < 16


def test_causal_and_padding_masks():
    """A step's state depends on earlier valid steps only: changing a later frame or a padded
    frame leaves it unchanged."""
    m = ClickPolicy(PolicyConfig(head="cells", cell_history=3, **TINY)).eval()
    torch.nn.init.normal_(m.history.out.weight)  # zero-initialised: make it matter
    batch = make_batch()
    a = m(batch)
    later = {k: v.clone() for k, v in batch.items()}
    later["frames"][:, 3] = 0
    b = m(later)
    assert torch.allclose(a.h[:, :3], b.h[:, :3], atol=1e-5)
    assert torch.allclose(a.cells[:, :3], b.cells[:, :3], atol=1e-5)
    padded = {k: v.clone() for k, v in batch.items()}
    padded["frames"][0, 0] = 7  # window 0's first steps are padding
    c = m(padded)
    assert torch.allclose(a.h[0, 2:], c.h[0, 2:], atol=1e-5)
    assert torch.allclose(a.cells[0, 2:], c.cells[0, 2:], atol=1e-5)


def test_cell_history_sees_earlier_frames():
    m = ClickPolicy(PolicyConfig(head="cells", cell_history=3, **TINY)).eval()
    batch = make_batch()
    before = m(batch).cells
    torch.nn.init.normal_(m.history.out.weight)
    changed = {k: v.clone() for k, v in batch.items()}
    changed["frames"][1, 2] = 0  # a frame two steps before the last
    x, y = m(batch).cells, m(changed).cells
    assert torch.allclose(before, m.encoder(batch["frames"].flatten(0, 1))[1].view_as(before))
    assert not torch.allclose(x[1, 3], y[1, 3])  # the last step sees it through its history


@pytest.mark.parametrize("config", [dict(head="xy"), dict(head="cells"),
                                    dict(head="cells", cell_history=3, target_head=True)])
def test_act_gives_the_clicks_of_predict_over_the_window(config):
    """One-step inference with caches equals the reference pass over each step's window, over an
    episode longer than the window, with two sessions starting at different steps."""
    torch.manual_seed(0)
    m = ClickPolicy(PolicyConfig(**config, **TINY)).eval()
    if m.history is not None:
        torch.nn.init.normal_(m.history.out.weight)
    if m.cfg.target_head:
        torch.nn.init.normal_(m.target_read.weight)
    k, n = m.cfg.window, 10
    g = torch.Generator().manual_seed(1)
    frames = torch.randint(0, 256, (2, n, 128, 160, 3), dtype=torch.uint8, generator=g)
    clicks = torch.randint(0, 100, (2, n, 2), generator=g)
    state = m.start(2)
    for t in range(n):
        prev = torch.where(torch.tensor(t == 0), torch.full((2, 2), -1), clicks[:, t - 1])
        got = m.act(state, torch.tensor([1, 0]), frames[[1, 0], t], prev[[1, 0]])
        idx = torch.arange(t - k + 1, t + 1)
        valid = idx >= 0
        src = idx.clamp(min=0)
        window = {"frames": frames[:, src] * valid[None, :, None, None, None].to(torch.uint8),
                  "prev_xy": torch.where((valid & (src > 0))[None, :, None],
                                         clicks[:, (src - 1).clamp(min=0)], 0),
                  "bos": (idx == 0)[None].expand(2, -1), "valid": valid[None].expand(2, -1)}
        assert torch.equal(got, m.predict(window)[[1, 0]]), t


def test_shipped_configs_act_as_they_predict():
    """Both shipped configs (CPU preset and paper preset) run through start/act."""
    from annobc.train.config import load_config, shipped_configs

    for name in shipped_configs():
        cfg = load_config(name)
        small = dict(cfg.model.overrides, window=cfg.data.window)
        if PRESETS[cfg.model.preset]["encoder"] == "vit":
            small.update(vit_dim=24, vit_depth=1, vit_heads=2, d_model=16, n_layers=1, n_heads=2)
        m = ClickPolicy(preset(cfg.model.preset, screen_w=64, screen_h=48, **small)).eval()
        k = m.cfg.window
        batch = make_batch(b=1, k=k, w=64, h=48)  # an episode's first step, left-padded
        batch["frames"][:, :-1] = 0
        batch["prev_xy"][:] = 0
        batch["valid"][:] = False
        batch["valid"][:, -1] = True
        batch["bos"][:] = False
        batch["bos"][:, -1] = True
        state = m.start(1)
        got = m.act(state, torch.tensor([0]), batch["frames"][:, -1], torch.full((1, 2), -1))
        assert torch.equal(got, m.predict(batch)), name


def test_preset_sizes_span_1m_to_95m():
    counts = {}
    for name in PRESETS:
        with torch.device("meta"):
            counts[name] = ClickPolicy(preset(name)).num_params()
    assert 0.7e6 <= counts["tiny"] <= 1.6e6
    assert 3e6 <= counts["small"] <= 7e6
    assert 24e6 <= counts["vit-s"] <= 34e6
    assert 85e6 <= counts["vit-b"] <= 110e6


def test_config_is_architecture_only_round_trips_and_errors():
    from dataclasses import fields

    assert len(fields(PolicyConfig)) <= 20
    cfg = PolicyConfig(head="cells", cell_history=2, target_head=True, **TINY)
    assert PolicyConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model key"):
        PolicyConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError, match="head must be one of"):
        PolicyConfig(head="magic")
    with pytest.raises(ValueError, match="target_head needs head: cells"):
        PolicyConfig(head="xy", target_head=True)
    with pytest.raises(ValueError, match="unknown model preset"):
        preset("huge")


VIT = dict(encoder="vit", vit_dim=24, vit_depth=2, vit_heads=2, d_model=16, n_layers=1, n_heads=2,
           window=2)


def test_pretrained_vit_weights_load_from_disk_with_timm_names(tmp_path):
    src = ViTEncoder(PolicyConfig(**VIT))
    sd = {f"backbone.{k}": v.clone() for k, v in src.state_dict().items() if not k.startswith("to_token")}
    # A checkpoint made at another resolution: a 4x4 patch grid, as DINOv2's are square.
    sd["backbone.pos_embed"] = torch.randn(1, 1 + 16, 24)
    sd["mask_token"] = torch.zeros(1, 24)  # DINOv2 extra, ignored
    path = tmp_path / "dinov2_tiny.safetensors"
    save_file(sd, str(path))
    enc = ViTEncoder(PolicyConfig(**VIT, pretrained=str(path)))
    got = enc.state_dict()
    assert torch.equal(got["blocks.1.attn.qkv.weight"], src.state_dict()["blocks.1.attn.qkv.weight"])
    assert got["pos_embed"].shape == (1, 1 + enc.grid[0] * enc.grid[1], 24)
    assert torch.equal(got["pos_embed"][:, 0], sd["backbone.pos_embed"][:, 0])
    report = load_pretrained_vit(enc, str(path))
    assert "mask_token" in report["skipped"] and report["loaded"] > 10
    pth = tmp_path / "w.pth"
    torch.save({"model": {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}}, pth)
    assert load_pretrained_vit(enc, str(pth))["loaded"] > 10


def test_missing_pretrained_weights_warn_once_and_init_randomly(tmp_path):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = ClickPolicy(PolicyConfig(**VIT, pretrained=str(tmp_path / "absent.safetensors")))
    assert len([x for x in w if "not found" in str(x.message)]) == 1
    loss, _ = ClickLoss(m)(make_batch(k=2))
    assert torch.isfinite(loss)


