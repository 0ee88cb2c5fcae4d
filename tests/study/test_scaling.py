"""annobc study scaling end to end on two tasks, two tiny models, two dataset sizes; resume; and
its claims on made-up grids."""

import pytest

from annobc.study import UnitLimit, run_study
from annobc.study.scaling import claim_decisions, claim_efficiency, episodes_to_threshold

from .conftest import check_report_figures


def test_runs_end_to_end_writes_its_report_and_resumes(tmp_path, scaling_settings):
    with pytest.raises(UnitLimit):  # datasets (2 + val), then the first cell's training and scoring
        run_study("scaling", "micro", tmp_path, scaling_settings, progress=False, max_new_units=5)
    ckpts = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("model.safetensors")}
    assert {p.parts[-4] for p in ckpts} == {"a-n2"}
    res = run_study("scaling", "micro", tmp_path, scaling_settings, progress=False)
    assert "a-n2" not in res["units"]["trained"] and len(res["units"]["trained"]) == 3
    assert {p: p.stat().st_mtime_ns for p in ckpts} == ckpts
    assert [m["name"] for m in res["models"]] == ["a", "b"]  # ordered by size
    assert res["models"][0]["params"] < res["models"][1]["params"]
    assert res["episodes"] == [2, 4]
    for m in ("a", "b"):
        for n in ("2", "4"):
            cell = res["grid"][m][n]
            assert cell["nll"] > 0 and 0 <= cell["validity"] <= 1
            assert res["provenance"]["checkpoint_steps"][m][n] == 4  # the same steps everywhere
    for claim in res["claims"].values():
        assert claim["verdict"] in ("holds", "does not hold", "not testable")
    report = (tmp_path / "report.md").read_text()
    assert "same 4 steps" in report
    for png in ("val_nll.png", "placement_decisions.png"):
        assert f"({png})" in report and (tmp_path / png).stat().st_size > 1000
    assert check_report_figures(tmp_path) > 30
    # the training datasets are nested and the val set is shared
    from annobc.data import EpisodeStore

    small, large = EpisodeStore(tmp_path / "data" / "train-n2"), EpisodeStore(tmp_path / "data" / "train-n4")
    assert len(small.episode_ids("train")) == 2 * 2 and len(large.episode_ids("train")) == 4 * 2
    assert set(small.episode_ids("train")) < set(large.episode_ids("train"))
    assert len(EpisodeStore(tmp_path / "data" / "val").episode_ids("val")) == 2 * 2


def test_episodes_to_threshold_interpolates_in_log_log():
    e = episodes_to_threshold([4.0, 2.0, 1.0], [10, 100, 1000], 2.0 ** 0.5)
    assert e["reached"] and not e["censored"] and e["episodes"] == pytest.approx(10 ** 2.5)
    assert episodes_to_threshold([1.0, 0.5], [10, 100], 2.0)["censored"]
    assert not episodes_to_threshold([4.0, 3.0], [10, 100], 1.0)["reached"]


def cell(nll, place, dec, n=400):
    return {"nll": nll, "placement@5": place, "decision_accuracy": dec,
            "decisions": {"rate": dec, "k": int(dec * n), "n": n,
                          "ci95": [max(0, dec - 0.05), min(1, dec + 0.05)]}}


def test_claims_point_by_point():
    eps = [10, 100]
    grid = {"s": {"10": cell(3.0, 0.50, 0.80), "100": cell(2.0, 0.70, 0.85)},
            "l": {"10": cell(2.5, 0.52, 0.60), "100": cell(1.5, 0.90, 0.70)}}
    eff = {m: episodes_to_threshold([grid[m][str(n)]["nll"] for n in eps], eps, 2.0) for m in grid}
    c1 = claim_efficiency(grid, ["s", "l"], eps, eff)
    assert c1["verdict"] == "holds" and c1["points_holding"] == 2
    assert c1["threshold_verdict"] == "holds"
    c2 = claim_decisions(grid, ["s", "l"], eps, 0.05)
    assert [p["verdict"] for p in c2["points"]] == ["holds", "not comparable"]
    assert c2["points"][0]["significant"] and c2["verdict"] == "holds"
    grid["l"]["10"] = cell(3.5, 0.52, 0.90)
    assert claim_efficiency(grid, ["s", "l"], eps, eff)["verdict"] == "does not hold"
    assert claim_decisions(grid, ["s", "l"], eps, 0.05)["verdict"] == "does not hold"
