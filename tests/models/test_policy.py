import warnings

import pytest
import torch
from safetensors.torch import save_file

from annobc.models import PRESETS, ClickPolicy, PolicyConfig, preset
from annobc.models.encoders import ViTEncoder, load_pretrained_vit

TINY = dict(cnn_channels=(4, 8, 8, 8), d_model=16, n_layers=2, n_heads=2, window=4)


def make_batch(b=3, k=4, w=160, h=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = {
        "frames": torch.randint(0, 256, (b, k, h, w, 3), dtype=torch.uint8, generator=g),
        "prev_xy": torch.randint(0, 100, (b, k, 2), generator=g),
        "xy": torch.randint(0, 100, (b, k, 2), generator=g),
        "bos": torch.zeros(b, k, dtype=torch.bool),
        "valid": torch.ones(b, k, dtype=torch.bool),
        "category": torch.randint(0, 7, (b, k), generator=g),
    }
    batch["valid"][0, : k // 2] = False  # the episode starts halfway through window 0
    batch["bos"][0, k // 2] = True
    return batch


@pytest.mark.parametrize("head", ["xy", "heatmap"])
def test_loss_ignores_the_targets_of_learner_steps(head):
    """Takeover episodes: a policy's own clicks are history (prev_xy), never targets."""
    torch.manual_seed(0)
    m = ClickPolicy(PolicyConfig(head=head, aux_category=0.5, **TINY)).eval()
    batch = make_batch()
    batch["imitate"] = torch.ones_like(batch["valid"])
    batch["imitate"][1, :2] = False
    base, _ = m(batch)
    moved = {k: v.clone() for k, v in batch.items()}
    moved["xy"][1, :2] = moved["xy"][1, :2] + 7
    moved["category"][1, :2] = (moved["category"][1, :2] + 1) % 7
    assert m(moved)[0].item() == pytest.approx(base.item())
    moved["xy"][1, 2] = moved["xy"][1, 2] + 7  # a demonstrated step's target still counts
    assert m(moved)[0].item() != pytest.approx(base.item())
    del batch["imitate"]  # batches without the field (annotator-only data) imitate every step
    assert m(batch)[0].item() != pytest.approx(base.item())


def test_aux_target_points_at_the_item_being_worked_on():
    torch.manual_seed(0)
    m = ClickPolicy(PolicyConfig(head="heatmap", aux_target=1.0, spatial_coords=True, **TINY))
    batch = make_batch()
    batch["target_xy"] = torch.full((3, 4, 2), -1, dtype=torch.long)
    without, info = m(batch)
    assert "loss_target" not in info  # no step has a target point
    batch["target_xy"][1:, :, 0], batch["target_xy"][1:, :, 1] = 37, 90
    with_target, info = m(batch)
    assert with_target.item() > without.item() and info["loss_target"] > 0
    with_target.backward()
    assert m.target_query.weight.grad.abs().sum() > 0
    # The point is learnable: training the second query alone lowers its loss.
    opt = torch.optim.Adam(m.target_query.parameters(), lr=0.05)
    for _ in range(30):
        opt.zero_grad()
        m(batch)[0].backward()
        opt.step()
    assert m(batch)[1]["loss_target"] < 0.5 * info["loss_target"]
    with pytest.raises(ValueError, match="aux_target"):
        PolicyConfig(head="xy", aux_target=0.5)


def test_aux_offset_predicts_the_distance_from_the_item_and_ignores_steps_without_one():
    torch.manual_seed(0)
    m = ClickPolicy(PolicyConfig(aux_offset=1.0, **TINY))
    batch = make_batch()
    batch["target_offset"] = torch.full((3, 4), -100, dtype=torch.long)
    without, info = m(batch)
    assert "loss_offset" not in info  # no step knows its offset
    batch["target_offset"][1:] = torch.tensor([0, 2, 3, 5])
    with_offset, info = m(batch)
    assert with_offset.item() > without.item() and info["loss_offset"] > 0
    opt = torch.optim.Adam(m.head_offset.parameters(), lr=0.05)
    for _ in range(40):  # learnable: the head alone fits it (the states differ per step)
        opt.zero_grad()
        m(batch)[0].backward()
        opt.step()
    assert m(batch)[1]["loss_offset"] < 0.5 * info["loss_offset"]
    assert ClickPolicy(PolicyConfig(**TINY)).head_offset is None  # off by default


def test_target_read_starts_as_no_read_and_learns_from_the_offset_loss():
    cfg = dict(head="heatmap", aux_target=0.5, aux_offset=1.0, spatial_coords=True, **TINY)
    torch.manual_seed(0)
    plain = ClickPolicy(PolicyConfig(**cfg))
    torch.manual_seed(0)
    m = ClickPolicy(PolicyConfig(target_read=True, **cfg))
    m.load_state_dict(plain.state_dict(), strict=False)
    batch = make_batch()
    batch["target_xy"] = torch.full((3, 4, 2), 40, dtype=torch.long)
    batch["target_offset"] = torch.tensor([0, 2, 3, 5]).expand(3, 4).clone()
    loss, info = m(batch)
    assert loss.item() == pytest.approx(plain(batch)[0].item())  # zero-initialised
    loss.backward()
    assert m.target_read.weight.grad.abs().sum() > 0  # the offset and click losses reach the read
    with pytest.raises(ValueError, match="target_read needs aux_target"):
        PolicyConfig(target_read=True, head="heatmap")


@pytest.mark.parametrize("head", ["xy", "heatmap"])
def test_forward_loss_and_backward(head):
    m = ClickPolicy(PolicyConfig(head=head, aux_category=0.5, **TINY))
    loss, info = m(make_batch())
    loss.backward()
    assert torch.isfinite(loss) and info["loss"] == pytest.approx(loss.item())
    assert "loss_category" in info
    assert "loss_x" in info and "loss_y" in info  # per coordinate (marginals for the heatmap)
    assert ("loss_pixel" in info) == (head == "heatmap")
    assert all(p.grad is not None for n, p in m.named_parameters() if p.requires_grad)


@pytest.mark.parametrize("head", ["xy", "heatmap"])
def test_predict_is_inside_the_screen_and_sampling_varies(head):
    m = ClickPolicy(PolicyConfig(head=head, **TINY)).eval()
    batch = make_batch()
    p = m.predict(batch)
    assert p.shape == (3, 2) and (p[:, 0] < 160).all() and (p[:, 1] < 128).all() and (p >= 0).all()
    assert torch.equal(p, m.predict(batch))
    g = torch.Generator().manual_seed(0)
    samples = {tuple(m.predict(batch, temperature=5.0, generator=g)[0].tolist()) for _ in range(10)}
    assert len(samples) > 1


@pytest.mark.parametrize("head", ["xy", "heatmap"])
def test_forward_predict_equals_predict(head):
    m = ClickPolicy(PolicyConfig(head=head, **TINY)).eval()
    batch = make_batch()
    _, info = m(batch, predict=True)
    assert torch.equal(info["pred"], m.predict(batch))


def test_causal_and_padding_masks():
    m = ClickPolicy(PolicyConfig(**TINY)).eval()
    batch = make_batch()
    h1, _ = m.encode(batch)
    later = {k: v.clone() for k, v in batch.items()}
    later["frames"][:, -1] = 0  # change only the last frame
    h2, _ = m.encode(later)
    assert torch.allclose(h1[:, :-1], h2[:, :-1], atol=1e-5)  # earlier steps do not see it
    assert not torch.allclose(h1[:, -1], h2[:, -1])
    padded = {k: v.clone() for k, v in batch.items()}
    padded["frames"][0, :2] = 255  # padding before the episode start must not matter
    h3, _ = m.encode(padded)
    assert torch.allclose(h1[0, 2:], h3[0, 2:], atol=1e-5)


def test_loss_ignores_padding_and_uses_category_weights():
    m = ClickPolicy(PolicyConfig(label_smoothing=0.0, **TINY))
    batch = make_batch()
    l1, info = m(batch)
    n_valid = int(batch["valid"].sum())
    expected = (info["loss_x"] + info["loss_y"]) * n_valid / batch["valid"].numel()
    assert l1.item() == pytest.approx(expected, rel=1e-5)
    b2 = {k: v.clone() for k, v in batch.items()}
    b2["xy"][0, :2] = 7  # targets at padded positions
    l2, _ = m(b2)
    assert l1.item() == pytest.approx(l2.item())
    m.category_weights.mul_(2.0)
    l3, _ = m(batch)
    assert l3.item() == pytest.approx(2 * l1.item(), rel=1e-5)


def test_preset_sizes_span_1m_to_95m():
    counts = {}
    for name in PRESETS:
        with torch.device("meta"):
            counts[name] = ClickPolicy(preset(name)).num_params()
    assert 0.7e6 <= counts["tiny"] <= 1.6e6
    assert 3e6 <= counts["small"] <= 7e6
    assert 24e6 <= counts["vit-s"] <= 34e6
    assert 85e6 <= counts["vit-b"] <= 110e6


def test_config_round_trip_and_errors():
    cfg = PolicyConfig(head="heatmap", **TINY)
    assert PolicyConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown model key"):
        PolicyConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError, match="head must be one of"):
        PolicyConfig(head="magic")
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
    loss, _ = m(make_batch(k=2))
    assert torch.isfinite(loss)


def test_spatial_context_adds_deeper_features_to_the_heatmap_map():
    torch.manual_seed(0)
    plain = ClickPolicy(PolicyConfig(head="heatmap", **TINY))
    ctx = ClickPolicy(PolicyConfig(head="heatmap", spatial_context=True, **TINY))
    assert ctx.num_params() > plain.num_params()
    frames = make_batch()["frames"].flatten(0, 1)
    _, s1 = ctx.encoder(frames)
    with torch.no_grad():
        for lat in ctx.encoder.lateral:
            lat.weight.zero_()
            lat.bias.zero_()
    _, s2 = ctx.encoder(frames)
    assert s1.shape == s2.shape and not torch.allclose(s1, s2)
    loss, _ = ctx(make_batch())
    loss.backward()
    assert ctx.encoder.lateral[0].weight.grad is not None


def test_spatial_history_is_causal_sees_earlier_frames_and_ignores_padding():
    torch.manual_seed(0)
    m = ClickPolicy(PolicyConfig(head="heatmap", spatial_history=2, spatial_coords=True,
                                 spatial_summary=True, **TINY)).eval()
    torch.nn.init.normal_(m.history.out.weight)  # zero-initialised: make it matter
    batch = make_batch()
    h1, s1 = m.encode(batch)
    assert s1.shape[2] == m.encoder.spatial_channels
    changed = {k: v.clone() for k, v in batch.items()}
    changed["frames"][:, 1] = 0  # change frame 1 only
    _, s2 = m.encode(changed)
    assert torch.allclose(s1[:, 0], s2[:, 0], atol=1e-5)  # earlier steps do not see it
    assert not torch.allclose(s1[1:, 2], s2[1:, 2])  # the next step's map does (2 frames back)
    assert torch.allclose(s1[:, 3], s2[:, 3], atol=1e-5)  # beyond the history it is gone
    h2, _ = m.encode(changed)
    assert torch.allclose(h1[:, 0], h2[:, 0], atol=1e-5)  # the summary keeps the transformer causal
    # The summary is what the transformer reads of the cells' history: without it, a change the
    # cells see two frames back changes step 2's state only through the token of frame 1.
    m.summary.weight.data.zero_()
    m.summary.bias.data.zero_()
    h3, _ = m.encode(batch)
    assert not torch.allclose(h1[:, 2], h3[:, 2])
    padded = {k: v.clone() for k, v in batch.items()}
    padded["frames"][0, :2] = 255  # padding before the episode start must not matter
    _, s3 = m.encode(padded)
    assert torch.allclose(s1[0, 2:], s3[0, 2:], atol=1e-5)
    with pytest.raises(ValueError, match="spatial_history"):
        PolicyConfig(spatial_history=9, window=8)


def test_spatial_peak_compares_each_cell_with_its_brightest_frame_before():
    """With spatial_peak the history sees features now minus their max over the frames before."""
    from annobc.models.policy import SpatialHistory
    hist = SpatialHistory(1, 3, hidden=1, peak=True)
    with torch.no_grad():  # only the comparison path: x_t + gelu(x_t - max(x_{t-2}, x_{t-1}))
        hist.mix.weight.zero_()
        hist.mix.bias.zero_()
        hist.peak.weight.fill_(1.0)
        hist.out.weight.fill_(1.0)
    x = torch.tensor([1.0, 3.0, 2.0, 3.0, 0.5]).view(1, 5, 1, 1, 1)  # (b, k, C, h, w)
    valid = torch.ones(1, 5, dtype=torch.bool)
    y = hist(x, valid).flatten()
    gelu = torch.nn.functional.gelu
    # Frames before the window are zeros; frame 3 equals the brightest before it (no rise).
    expected = torch.tensor([1 + gelu(torch.tensor(1.0)), 3 + gelu(torch.tensor(2.0)),
                             2 + gelu(torch.tensor(-1.0)), 3.0, 0.5 + gelu(torch.tensor(-2.5))])
    assert torch.allclose(y, expected, atol=1e-6)
    assert torch.allclose(hist(x, valid, last=True).flatten(), y[-1:])  # rollouts: same last step
    invalid = valid.clone()
    invalid[0, 1] = False  # a padded frame counts as zeros: frame 2 now rises above frame 0
    assert hist(x, invalid).flatten()[2] > y[2]
    with pytest.raises(ValueError, match="spatial_peak"):
        PolicyConfig(spatial_peak=True, spatial_history=1)


def test_input_peak_gives_the_encoder_each_frame_minus_its_brightest_pixels_before():
    """input_peak: frames_before is the per-pixel max over the N-1 valid frames before each one,
    and the encoder reads frame - before (a revisited brightest slice gives exactly zero)."""
    m = ClickPolicy(PolicyConfig(head="heatmap", spatial_history=3, input_peak=True, **TINY))
    level = [10, 200, 50, 200]  # one grey level per frame: 200 is revisited at step 3
    frames = torch.stack([torch.full((128, 160, 3), v, dtype=torch.uint8) for v in level])[None]
    valid = torch.ones(1, 4, dtype=torch.bool)
    before = m.frames_before(frames, valid)[0, :, 0, 0, 0].tolist()
    assert before == [0, 10, 200, 200]  # N-1 = 2 frames back: step 3 sees steps 1-2
    valid[0, 1] = False  # an invalid frame counts as black
    assert m.frames_before(frames, valid)[0, :, 0, 0, 0].tolist() == [0, 10, 10, 50]
    # The encoder's input is the frame and frame - before: with before = frame (no change) and
    # before = 0 (all new) the same frame encodes differently.
    f = frames[0, 3:]
    same, _ = m.encode_frames(f, f.clone())
    new, _ = m.encode_frames(f, torch.zeros_like(f))
    assert not torch.allclose(same, new)
    assert m.encoder.stages[0][0].in_channels == 6
    for bad in (dict(spatial_history=1), dict(spatial_history=3, encoder="vit")):
        with pytest.raises(ValueError, match="input_peak"):
            PolicyConfig(input_peak=True, **{**TINY, **bad})


def test_coordinate_channels_let_the_query_prefer_a_position():
    m = ClickPolicy(PolicyConfig(head="heatmap", spatial_coords=True, label_smoothing=0.0, **TINY))
    with torch.no_grad():
        m.query.weight.zero_()
        m.query.bias.zero_()
        m.query.bias[-1] = -50.0  # score = -50 * y: prefer the top
    batch = make_batch()
    h, spatial = m.encode(batch)
    pix = m.click_logits(h, spatial)["pixel"][0, -1].view(128, 160)
    assert pix[0].mean() > pix[-1].mean()


def test_change_weight_scales_the_loss_of_steps_whose_action_changes():
    m = ClickPolicy(PolicyConfig(label_smoothing=0.0, **TINY))
    batch = make_batch()
    batch["changed"] = torch.zeros_like(batch["valid"])
    base, _ = m(batch)
    m.cfg.change_weight = 3.0
    same, _ = m(batch)  # no step changes: unchanged loss
    batch["changed"][:] = True
    tripled, _ = m(batch)
    assert same.item() == pytest.approx(base.item())
    assert tripled.item() == pytest.approx(3 * base.item(), rel=1e-5)


def test_settle_weight_scales_the_loss_of_the_first_repeat_after_a_change():
    m = ClickPolicy(PolicyConfig(label_smoothing=0.0, **TINY))
    batch = make_batch()
    batch["changed"] = torch.zeros_like(batch["valid"])
    batch["after_change"] = torch.zeros_like(batch["valid"])
    base, _ = m(batch)
    m.cfg.settle_weight = 2.0
    same, _ = m(batch)
    batch["after_change"][:, -1] = True  # only the last step of each window
    more, _ = m(batch)
    assert same.item() == pytest.approx(base.item())
    assert base.item() < more.item() < 2 * base.item()
    batch["after_change"][:] = True
    assert m(batch)[0].item() == pytest.approx(2 * base.item(), rel=1e-5)
