"""annobc study real end to end at a tiny scale: real-format files written, imported by the
importer, pretrained on synthetic tasks, fine-tuned and scratch on a few imported instances,
scored on held-out ones; a kill and a rerun that reuses the finished units; the other two sources;
the presets, the verdict and the instance bootstrap."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from annobc.cli.main import main
from annobc.study import UnitLimit, plan_study, run_study
from annobc.study.common import StudyError
from annobc.study.real import episode_figures, instance_of, verdict
from annobc.study.real_input import write_input
from annobc.train.config import load_config

from .conftest import TINY, TRAIN, check_report_figures

tifffile = pytest.importorskip("tifffile")

# 15 instances of 8 slices (5 neurites through a 24-section stack): 11 train, 2 val, 2 test.
SETTINGS = dict(tasks="colored_dot_tracking,neuron_tracking", source="neuron",
                input={"neuron": {"instances": 15, "length": 8}},
                pretrain_episodes_per_task=4, pretrain_steps=4, model_overrides=TINY, instances=[2, 4],
                episodes_per_instance=1, val_episodes=2, finetune_steps=3, tf_windows=16, tf_batch=8,
                closed_loop_episodes=4, closed_loop_max_steps=10, bootstrap=50, data_workers=1,
                threads=1, train_overrides=TRAIN)
# Stopped before the closed loop of the first grid run.
FIRST_UNITS = {"input-neuron", "import-neuron", "data-pretrain", "train-pretrain", "subset-n2",
               "data-train-n2", "subset-n4", "data-train-n4", "data-heldout", "tf-neuron-zero-shot",
               "cl-neuron-zero-shot", "train-neuron-published-n2", "tf-neuron-published-n2"}


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def killed_then_finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("real")
    with pytest.raises(UnitLimit):
        run_study("real", "micro", out, SETTINGS, progress=False, max_new_units=len(FIRST_UNITS))
    first = {p.stem for p in (out / "units").glob("*.json")}
    weights = {p: p.stat().st_mtime_ns for p in (out / "runs").rglob("model.safetensors")}
    marks = {p: p.stat().st_mtime_ns for p in (out / "units").glob("*.json")}
    res = run_study("real", "micro", out, SETTINGS, progress=False)
    return out, first, weights, marks, res


def test_the_input_is_written_in_the_real_format_and_imported(killed_then_finished):
    out, _, _, _, res = killed_then_finished
    prov = res["provenance"]
    assert prov["input"]["synthesised"] and prov["input"]["writer"].endswith("write_neuron")
    stack = tifffile.imread(out / "input" / "neuron" / "stack.tif")
    assert stack.dtype == np.uint8 and stack.shape[0] == 24  # 3 x 8 sections
    swcs = sorted((out / "input" / "neuron" / "skeletons").glob("*.swc"))
    assert len(swcs) == 5
    assert all(len(line.split()) == 7 for line in swcs[0].read_text().splitlines() if line[0] != "#")
    # the import card's sources are those files, hashed by the importer; results.json carries them
    card = json.loads((out / "import" / "neuron" / "import.json").read_text())
    assert card["task"] == "neuron_tracking" and card["options"]["voxel_size"] == [40.0, 8.0, 8.0]
    assert {Path(s["path"]).name: s["sha256"] for s in card["sources"]} == \
        {p.name: sha(p) for p in [out / "input" / "neuron" / "stack.tif", *swcs]}
    assert prov["imported"]["sources"] == [{k: s[k] for k in ("role", "path", "sha256")}
                                           for s in card["sources"]]
    assert prov["imported"]["import_json_sha256"] == sha(out / "import" / "neuron" / "import.json")
    assert res["splits"] == {"train": 11, "val": 2, "test": 2}
    written = {f["path"]: f["sha256"] for f in prov["input"]["files"]}
    assert written["stack.tif"] == sha(out / "input" / "neuron" / "stack.tif")


def test_train_instances_are_nested_and_held_out_ones_never_trained_on(killed_then_finished):
    from annobc.data import EpisodeStore

    out, _, _, _, res = killed_then_finished
    card = json.loads((out / "import" / "neuron" / "import.json").read_text())
    subsets = res["provenance"]["subsets"]
    assert len(subsets["2"]) == 2 and subsets["4"][:2] == subsets["2"]  # nested
    assert set(subsets["4"]) <= set(card["splits"]["train"])
    for n in (2, 4):
        store = EpisodeStore(out / "data" / f"neuron-train-n{n}")
        ids = store.episode_ids("train")
        assert len(ids) == n  # one episode per instance
        params = store.card["tasks"]["neuron_tracking"]["params"]
        played = {instance_of("neuron_tracking", params, store.meta(e)["seed"]) for e in ids}
        assert played == set(subsets[str(n)])
    held = EpisodeStore(out / "data" / "neuron-heldout")
    params = held.card["tasks"]["neuron_tracking"]["params"]
    for split in ("val", "test"):
        played = {instance_of("neuron_tracking", params, held.meta(e)["seed"])
                  for e in held.episode_ids(split)}
        assert played <= set(card["splits"][split]) and played
    cl = res["closed_loop"]
    assert set(cl["test_instances"]) == set(card["splits"]["test"])
    assert cl["episodes"] == 4


def test_arms_trained_alike_and_scored(killed_then_finished):
    out, _, _, _, res = killed_then_finished
    assert res["instances"] == [2, 4] and res["arms"] == ["published", "full", "scratch"]
    o = res["optim"]
    assert o["published"]["lr"] == pytest.approx(3e-5) and o["published"]["backbone_lr_mult"] == 0.01
    assert o["full"]["lr"] == o["scratch"]["lr"] == 1e-3 and o["scratch"]["init"] == "random"
    cfg = (out / "runs" / "neuron-full-n2" / "config.yaml").read_text()
    assert f"init_from: {out / 'runs' / 'pretrain'}" in cfg
    assert "init_from: ''" in (out / "runs" / "neuron-scratch-n4" / "config.yaml").read_text()
    cl, tf = res["closed_loop"], res["teacher_forced"]
    assert cl["parts"] == ["node_accuracy", "coverage"]
    for arm in res["arms"]:
        for n in ("2", "4"):
            f = cl["arms"][arm][n]
            assert f["steps"] == 3 and f["success"]["n"] == 4
            lo, hi = f["score"]["ci95"]
            assert 0 <= lo <= f["score"]["value"] <= hi <= 1
            acc = tf["arms"][arm][n]["teacher_forced"]["accuracy"]
            assert acc["n"] == tf["windows"] > 0
    # the score is the task's: node accuracy x coverage, episode by episode
    for e in json.loads((out / "units" / "cl-neuron-scratch-n4.json").read_text())["episodes"]:
        assert e["score"] == pytest.approx(e["node_accuracy"] * e["coverage"])
    ann = cl["annotator"]
    assert ann["success"]["n"] == 2 and ann["score"]["value"] > 0.5  # the annotator traces them
    for r in ("published", "full"):
        for n in ("2", "4"):
            assert cl["vs_scratch"][r][n]["score_verdict"] in ("helps", "hurts", "no significant difference")
    assert res["verdict"]["overall"] in ("pretraining helps", "pretraining hurts",
                                         "no significant difference", "mixed")


def test_report_and_every_table_figure_in_results_json(killed_then_finished):
    out, _, _, _, res = killed_then_finished
    report = (out / "report.md").read_text()
    assert "(real_neuron.png)" in report and (out / "real_neuron.png").stat().st_size > 1000
    assert "Synthesised, not real data" in report and "same 3 steps" in report
    assert res["verdict"]["overall"].capitalize() in report
    assert check_report_figures(out) > 200


def test_a_killed_study_reuses_its_finished_units(killed_then_finished):
    out, first, weights, marks, res = killed_then_finished
    assert first == FIRST_UNITS
    assert len(weights) == 2  # the pretraining run and the first fine-tuning run
    assert FIRST_UNITS <= set(res["units"]["reused"])
    assert "pretrain" not in res["units"]["trained"] and "neuron-published-n2" not in res["units"]["trained"]
    assert len(res["units"]["trained"]) == 2 * 3 - 1
    assert {p: p.stat().st_mtime_ns for p in weights} == weights
    assert all(p.stat().st_mtime_ns == t for p, t in marks.items())
    again = run_study("real", "micro", out, SETTINGS, progress=False)
    assert again["units"]["computed"] == [] and again["units"]["trained"] == []
    assert again["closed_loop"] == res["closed_loop"]


@pytest.mark.parametrize("source,length,parts", [("tracks", 8, ["track_accuracy", "division_f1"]),
                                                 ("pose", 2, [])])
def test_the_other_sources_end_to_end(source, length, parts, tmp_path):
    s = {**SETTINGS, "source": source, "input": {source: {"instances": 5, "length": length}},
         "instances": [2], "finetune_steps": 2, "closed_loop_episodes": 2, "tasks": "colored_dot_tracking"}
    res = run_study("real", "micro", tmp_path, s, progress=False)
    card = json.loads((tmp_path / "import" / source / "import.json").read_text())
    assert res["task"] == card["task"] and len(card["instances"]) == 5
    assert res["closed_loop"]["parts"] == parts and res["closed_loop"]["annotator"]["score"]["value"] > 0.5
    names = {f["path"] for f in res["provenance"]["input"]["files"]}
    assert (any(n.endswith("man_track.txt") for n in names) if source == "tracks"
            else any(n.endswith("CollectedData_lab.csv") for n in names))
    assert check_report_figures(tmp_path) > 50


def test_an_existing_run_replaces_the_pretraining(killed_then_finished, tmp_path):
    pre = killed_then_finished[0] / "runs" / "pretrain"
    s = {**SETTINGS, "pretrained_run": str(pre), "instances": [2], "finetune_steps": 2,
         "closed_loop_episodes": 2}
    res = run_study("real", "micro", tmp_path, s, progress=False)
    assert "pretrained-external" in res["units"]["computed"] and "train-pretrain" not in res["units"]["computed"]
    assert not (tmp_path / "data" / "pretrain").exists()
    p = res["provenance"]["pretraining"]
    assert p["external"] and p["steps"] == 4
    assert p["weights_sha256"] == sha(pre / "checkpoints" / "step-0000004" / "model.safetensors")
    assert f"init_from: {pre}" in (tmp_path / "runs" / "neuron-published-n2" / "config.yaml").read_text()
    assert res["closed_loop"]["zero_shot"]["run"] == "external"
    assert check_report_figures(tmp_path) > 50


def test_the_input_is_deterministic(tmp_path):
    for source, length in (("neuron", 8), ("tracks", 8), ("pose", 2)):
        a = write_input(source, tmp_path / f"{source}-a", 5, length, seed=3)
        b = write_input(source, tmp_path / f"{source}-b", 5, length, seed=3)
        c = write_input(source, tmp_path / f"{source}-c", 5, length, seed=4)
        assert a["files"] == b["files"] and a["files"] != c["files"], source


def test_presets_and_their_budget():
    m = plan_study("real", "micro")
    assert m["source"] == "neuron" and m["out"] == "runs/study/real-neuron-micro"
    pre = [r for r in m["train"] if r["role"] == "pretraining"]
    assert len(pre) == 1 and len(pre[0]["tasks"]) == 9 and pre[0]["steps"] == 3000
    grid = [r for r in m["train"] if r["role"] != "pretraining"]
    assert len(grid) == len(m["instances"]) * len(m["arms"]) and len({r["steps"] for r in grid}) == 1
    by_arm = {r["role"]: load_config(r["base_config"], r["overrides"]) for r in grid}
    assert by_arm["published"].optim.lr == pytest.approx(3e-5)
    assert by_arm["scratch"].model.init_from == "" and by_arm["full"].model.init_from.endswith("/pretrain")
    assert by_arm["published"].model.preset == "tiny" and by_arm["published"].optim.batch_size == 16
    est = m["cpu_estimate"]
    assert est["total_minutes_at_most"] <= 85  # with a few minutes of synthesis and generation: <= 90
    assert est["minutes"]["pretraining"] == pytest.approx(3000 * 0.35 / 60)
    p = plan_study("real", "paper", settings={"source": "tracks"})
    assert p["out"] == "runs/study/real-tracks-paper" and p["task"] == "cell_lineage_tracking"
    for r in p["train"]:
        cfg = load_config(r["base_config"], r["overrides"])
        assert cfg.model.preset == "vit-b" and cfg.run.device == "cuda" and 90e6 < r["params"] < 110e6
        assert r["estimate"]["gpu_hours"] > 0
    assert p["estimated_training_gpu_hours"] > 1
    # an existing pretrained run replaces the pretraining unit
    ext = plan_study("real", "micro", settings={"pretrained_run": "runs/study/emergence-micro/runs/policy"})
    assert not [r for r in ext["train"] if r["role"] == "pretraining"]
    assert ext["training_steps"]["pretraining"] == 0
    assert all(load_config(r["base_config"], r["overrides"]).model.init_from
               == "runs/study/emergence-micro/runs/policy" for r in ext["train"] if r["role"] != "scratch")


def test_bad_settings_are_refused():
    with pytest.raises(StudyError, match="train instances"):
        plan_study("real", "micro", settings={"instances": [6, 500]})
    with pytest.raises(StudyError, match="source must be one of"):
        plan_study("real", "micro", settings={"source": "spectra"})


def test_source_from_the_command_line(capsys):
    assert main(["study", "real", "--source", "pose", "--plan"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["task"] == "animal_limb_tracking" and plan["settings"]["source"] == "pose"
    assert main(["study", "transfer", "--source", "pose", "--plan"]) == 2
    assert "real study only" in capsys.readouterr().err


def test_the_instance_bootstrap_moves_an_instance_s_episodes_together():
    eps = [{"instance": "a", "score": 1.0}, {"instance": "a", "score": 1.0}, {"instance": "b", "score": 0.0}]
    W = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]])  # all a; all b; as drawn
    f = episode_figures(eps, W, {"a": 0, "b": 1}, [])
    assert f["score"]["value"] == pytest.approx(2 / 3)
    assert list(f["_boot_score"]) == pytest.approx([1.0, 0.0, 2 / 3])


def test_the_verdict():
    def cl(*v):  # published at N = 6, 24; full at N = 6, 24
        return {"vs_scratch": {r: {n: {"score_verdict": v[2 * i + j]} for j, n in enumerate(("6", "24"))}
                               for i, r in enumerate(("published", "full"))}}

    ns = "no significant difference"
    recipes, grid = ["published", "full"], [6, 24]
    assert verdict(cl("helps", "helps", ns, ns), recipes, grid)["overall"] == "pretraining helps"
    assert verdict(cl("helps", "helps", ns, "hurts"), recipes, grid)["overall"] == "mixed"
    assert verdict(cl("helps", ns, ns, ns), recipes, grid)["overall"] == "mixed"
    assert verdict(cl("hurts", "hurts", "hurts", "hurts"), recipes, grid)["overall"] == "pretraining hurts"
    assert verdict(cl(ns, ns, ns, ns), recipes, grid)["overall"] == ns
    assert verdict(cl("helps", "helps", ns, ns), recipes, grid)["by_recipe"]["published"] == {
        "helps": 2, "hurts": 0, "points": 2}
