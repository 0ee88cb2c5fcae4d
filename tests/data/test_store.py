"""The Parquet store: generation, splits, resume after a kill, versions and corruption."""

import json
import shutil
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from annobc.data import DatasetError, EpisodeStore, Plan, generate
from annobc.data.schema import EPISODE_COLUMNS, STEP_COLUMNS
from annobc.tasks import frame_hash, replay, run_annotator

TASK = "colored_dot_tracking"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "small"
    generate(root, Plan(tasks=(TASK,), episodes_per_task=12, shard_size=4), workers=2, progress=False)
    return root


def test_card_describes_versions_params_splits_and_stats(small):
    card = json.loads((small / "dataset.json").read_text())
    for key in ("schema_version", "renderer_version", "code_version", "tasks", "seed_ranges",
                "stats", "features"):
        assert key in card
    assert card["tasks"][TASK]["params"]["n_slices"] == [24, 32]
    s = card["stats"][TASK]
    assert s["episodes"] == 12 and 0 <= s["correction_rate"] <= 1
    assert set(card["features"]["steps"]) == {c[0] for c in STEP_COLUMNS}
    assert set(card["features"]["episodes"]) == {c[0] for c in EPISODE_COLUMNS}
    assert card["episodes"] == 12


def test_records_round_trip_and_replay(small):
    store = EpisodeStore(small)
    for eid in store.episode_ids():
        rec = store.record(eid)
        assert rec.to_dict() == run_annotator(TASK, rec.seed).to_dict()
    rec = store.record(store.episode_ids("val")[0])
    frames = []
    run_annotator(TASK, rec.seed, frames=frames)
    assert [frame_hash(f) for f in replay(rec)] == [frame_hash(f) for f in frames]


def test_splits_are_disjoint_seed_ranges(tmp_path):
    plan = Plan(tasks=(TASK,), episodes_per_task=30, seed=5)
    counts = plan.split_counts()
    assert counts == {"train": 24, "val": 3, "test": 3}
    root = tmp_path / "d"
    generate(root, plan, progress=False)
    store = EpisodeStore(root)
    seeds = {sp: {store.meta(e)["seed"] for e in store.episode_ids(sp)} for sp in counts}
    assert seeds["test"].isdisjoint(seeds["train"] | seeds["val"])
    assert seeds["train"].isdisjoint(seeds["val"])
    ranges = store.card["seed_ranges"]
    for sp, s in seeds.items():
        assert min(s) == ranges[sp][0] and max(s) == ranges[sp][1] and len(s) == counts[sp]


def test_steps_per_episode_are_tens_of_bytes(small):
    store = EpisodeStore(small)
    size = sum(p.stat().st_size for p in small.rglob("*.parquet"))
    assert size / sum(store.episodes["length"]) < 100


def _run_generate(out, n, workers=2):
    return subprocess.Popen([sys.executable, "-m", "annobc.cli.main", "generate", "--tasks", TASK,
                             "--episodes-per-task", str(n), "--out", str(out), "--workers",
                             str(workers), "--shard-size", "10"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_kill_and_resume_completes_without_duplicates_or_losses(tmp_path):
    out, n = tmp_path / "killed", 800
    proc = _run_generate(out, n)
    deadline = time.time() + 60
    while time.time() < deadline and not list((out / "episodes").glob("*.parquet")):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = list((out / "episodes").glob("*.parquet"))
    assert written, "the run wrote nothing before it was killed"
    assert not (out / "dataset.json").exists(), "the run finished before the kill; test is moot"
    proc = _run_generate(out, n)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    store = EpisodeStore(out)
    ids = store.episode_ids()
    assert len(ids) == len(set(ids)) == n
    ref = tmp_path / "ref"
    generate(ref, Plan(tasks=(TASK,), episodes_per_task=n, shard_size=10), workers=2, progress=False)
    ref_store = EpisodeStore(ref)
    assert sorted(ids) == sorted(ref_store.episode_ids())
    for eid in ids[:: 40]:
        assert store.record(eid).to_dict() == ref_store.record(eid).to_dict()
    assert not list(out.rglob(".*.tmp*"))


def test_resume_with_other_arguments_is_refused(small, tmp_path):
    copy = tmp_path / "c"
    shutil.copytree(small, copy)
    with pytest.raises(DatasetError, match="other arguments"):
        generate(copy, Plan(tasks=(TASK,), episodes_per_task=13, shard_size=4), progress=False)


def _copy(small, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(small, copy)
    return copy


def test_other_renderer_version_is_a_one_line_error(small, tmp_path):
    root = _copy(small, tmp_path)
    p = next((root / "episodes").glob("*.parquet"))
    t = pq.read_table(p)
    t = t.set_column(t.schema.get_field_index("renderer_version"), t.schema.field("renderer_version"),
                     [["0"] * t.num_rows])
    pq.write_table(t, p)
    with pytest.raises(DatasetError, match=r"renderer version 0; this annobc renders version 1"):
        EpisodeStore(root)


def test_other_schema_version_is_refused(small, tmp_path):
    root = _copy(small, tmp_path)
    card = json.loads((root / "dataset.json").read_text())
    card["schema_version"] = 99
    (root / "dataset.json").write_text(json.dumps(card))
    with pytest.raises(DatasetError, match="schema version 99"):
        EpisodeStore(root)


def test_missing_and_truncated_shards_are_named(small, tmp_path):
    root = _copy(small, tmp_path)
    victim = sorted((root / "steps").glob("*.parquet"))[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=f"{victim.name} is truncated"):
        EpisodeStore(root)
    victim.unlink()
    with pytest.raises(DatasetError, match=f"missing shard file .*{victim.name}"):
        EpisodeStore(root)


def test_unknown_task_lists_known_ones(small, tmp_path):
    root = _copy(small, tmp_path)
    p = next((root / "episodes").glob("*.parquet"))
    t = pq.read_table(p)
    t = t.set_column(t.schema.get_field_index("task_id"), t.schema.field("task_id"),
                     [["mystery_task"] * t.num_rows])
    pq.write_table(t, p)
    with pytest.raises(DatasetError, match="unknown task 'mystery_task'; known tasks: .*" + TASK):
        EpisodeStore(root)


def test_stats_of_a_dataset_folder(small, capsys):
    from annobc.cli.main import main

    assert main(["stats", str(small), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["stats"][TASK]["episodes"] == 12
    assert main(["stats", str(small)]) == 0
    assert TASK in capsys.readouterr().out


def test_task_params_other_than_defaults_are_used_and_recorded(tmp_path, capsys):
    from annobc.cli.main import main

    out = tmp_path / "p"
    assert main(["generate", "--tasks", TASK, "--episodes-per-task", "3", "--out", str(out),
                 "--param", f"{TASK}.n_targets=[4, 5]", "--param", f"{TASK}.n_slices=[24, 24]"]) == 0
    store = EpisodeStore(out)
    assert store.card["tasks"][TASK]["params"]["n_targets"] == [4, 5]
    rec = store.record(store.episode_ids()[0])
    assert rec.params["n_slices"] == [24, 24]
    from annobc.tasks import Session

    assert Session(TASK, rec.seed, rec.params).task.n_slices == 24
    assert 4 <= len(Session(TASK, rec.seed, rec.params).task.targets) <= 5
    assert main(["generate", "--tasks", TASK, "--episodes-per-task", "3", "--out", str(tmp_path / "q"),
                 "--param", f"{TASK}.wings=2"]) == 2
    assert "unknown task parameter" in capsys.readouterr().err


def test_resume_of_a_dataset_planned_before_a_plan_field_existed(small, tmp_path):
    copy = _copy(small, tmp_path)
    plan = json.loads((copy / "plan.json").read_text())
    del plan["params"]  # as written by an annobc without per-task parameters
    (copy / "plan.json").write_text(json.dumps(plan))
    card = generate(copy, Plan(tasks=(TASK,), episodes_per_task=12, shard_size=4), progress=False)
    assert card["generation"]["episodes_written_now"] == 0 and card["episodes"] == 12
