"""benchmarks/model_variants.py at a tiny scale: every variant is built as asked and timed, with
its val NLL per task, and a bad variant fails before any work."""

import json

import pytest

from tests.benchmarks import load


def test_variants_swap_the_encoder_blocks_and_the_config(tmp_path):
    bench = load("model_variants")
    out = tmp_path / "mv.json"
    assert bench.main(["--steps", "6", "--episodes-per-task", "3", "--val-batches", "2",
                       "--batch-size", "2", "--base", "d_model=16,n_layers=1,n_heads=2",
                       "--variants", "relu_nonorm:act=relu,norm=none", "hist2:cell_history=2",
                       "--out", str(out)]) == 0
    r = json.loads(out.read_text())["results"]
    assert set(r) == {"preset", "relu_nonorm", "hist2"}
    # no GroupNorm: its weights go, a conv bias per layer comes
    assert r["relu_nonorm"]["params"] != r["preset"]["params"]
    assert r["hist2"]["params"] < r["preset"]["params"]  # fewer history taps
    for row in r.values():
        assert row["step_s_median"] > 0 and row["val_nll"] > 0 and row["val_nll_by_task"]
    assert "speedup" in r["hist2"] and "val_nll_minus_preset" in r["hist2"]


def test_a_malformed_variant_fails_at_once(tmp_path):
    bench = load("model_variants")
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        bench.main(["--variants", "broken", "--out", str(tmp_path / "x.json")])
