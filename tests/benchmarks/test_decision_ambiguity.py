"""benchmarks/decision_ambiguity.py at a tiny scale (2 tasks x 2 seeds): it writes every figure,
its shares lie in [0, 1], and the clones measure what they should: a clone with the annotator's
own decision seed never clicks differently, one with another seed does where a mistake coin fires."""

import json
import math

import numpy as np

from annobc.tasks import run_annotator

from tests.benchmarks import load

TASKS = ["neuron_tracking", "animal_limb_tracking"]  # both make mistakes at seeds 0 and 1


def shares(d, path=""):
    """Every R*, share, rate and label figure in the results, with its path."""
    for k, v in d.items():
        if isinstance(v, dict):
            yield from shares(v, f"{path}/{k}")
        elif (k.startswith("R") or "share" in k or k in ("success_rate", "label_differs",
                                                          "changes_canvas")) and v is not None:
            yield f"{path}/{k}", v


def test_writes_every_figure_with_shares_in_unit_interval(tmp_path, capsys):
    bench = load("decision_ambiguity")
    out = tmp_path / "da.json"
    assert bench.main(["--tasks", ",".join(TASKS), "--seeds", "2", "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["seeds"] == 2 and "cpu" in saved["machine"] and set(saved["results"]) == set(TASKS)
    for t, r in saved["results"].items():
        assert {"R0", "R8", "R32", "label_differs"} <= set(r["overall"])
        assert r["R8_element_change"] is not None
        assert {"n", "R8", "R32", "clicks_after_last_annotation"} <= set(r["done"])
        assert set(r["done"]["clicks_after_last_annotation"]) == {"mean", "median", "share_over_8"}
        assert r["done"]["n"] == 2  # both episodes end with DONE
        assert {"n", "R8", "changes_canvas", "clicks_since_mistake"} <= set(r["undo"])
        assert {"steps", "of"} == set(r["aliasing"]) and r["aliasing"]["of"] == r["steps"]
        assert set(r["mistakes"]) == {"click_share", "episodes_with_one"}
        assert r["mistakes"]["episodes_with_one"] == 1.0
        for d in r["by_decision"].values():
            assert {"n", "R0", "R8", "R32", "label_differs"} <= set(d)
        assert sum(d["n"] for d in r["by_decision"].values()) == r["steps"]
        assert r["clone_errors"] == 0
        figures = dict(shares(r))
        assert len(figures) > 20
        for path, v in figures.items():
            assert 0.0 <= v <= 1.0 and not math.isnan(v), (t, path, v)
        assert f"| {t} |" in saved["table"]


def test_clones_see_only_new_coins():
    bench = load("decision_ambiguity")
    for t in TASKS:
        for seed in (0, 1):
            # Control: a clone with A's own decision seed is A (same memory, same world, same
            # click noise), so it never clicks differently, at any age: every clone survives,
            # and every R is 0 (none left out). A clone that copied the world would fall behind.
            same = bench.measure_episode(t, seed, reseed=False)
            assert same["clone_errors"] == 0
            assert all(s["R"][w] == 0.0 for s in same["steps"] for w in bench.WINDOWS)
            # Measurement: the deliberate mistakes are coins, so clones that redraw them make
            # the mistake click far less often than A does; ordinary clicks mostly agree.
            ep = bench.measure_episode(t, seed)
            # Measuring does not change A: its clicks are those of the plain demonstration.
            assert [(s["x"], s["y"]) for s in ep["steps"]] == run_annotator(t, seed).clicks
            r8 = [s["R"][8] for s in ep["steps"] if s["is_mistake"] and s["R"][8] is not None]
            assert r8 and np.mean(r8) >= 0.5, (t, seed, r8)
            assert np.mean([s["R"][8] for s in ep["steps"] if s["R"][8] is not None]) < 0.2
