"""GUI variants end to end: every task in every variant, annotators and hit-testing in a sample of
them, bit-exact replay per variant, the dataset column, the card, the web recorder and the CLI."""

import json

import numpy as np
import pytest

from annobc.gui import UI_VARIANTS, get_variant
from annobc.tasks import Session, frame_hash, get_task_class, replay, run_annotator, task_ids
from annobc.tasks.episode import EpisodeRecord

# Three non-default variants covering every panel side, theme and the larger font.
SAMPLE = ("left-light", "bottom-compact", "large-font")
SEEDS = (0, 1, 2)


@pytest.mark.parametrize("task_id", task_ids())
def test_every_task_builds_in_every_variant(task_id):
    labels = [b.label for b in get_task_class(task_id).buttons]
    first = {}
    for name in UI_VARIANTS:
        s = Session(task_id, 0, ui_variant=name)
        assert s.ui_variant == name and s.theme == get_variant(name).theme
        assert set(s.layout.buttons) == set(labels)
        first[name] = frame_hash(s.render())
    assert len(set(first.values())) == len(first)  # every variant looks different


@pytest.mark.parametrize("variant", SAMPLE)
@pytest.mark.parametrize("task_id", task_ids())
def test_hit_testing_in_a_variant(task_id, variant):
    s = Session(task_id, 0, ui_variant=variant)
    category = {b.label: b.category for b in s.task_cls.buttons}
    for label, r in s.layout.buttons.items():
        for x, y in ((r.x0, r.y0), (r.x1 - 1, r.y1 - 1), (r.x0 + r.w // 2, r.y0 + r.h // 2)):
            assert s.hit(x, y) == (label, category[label])
    c = s.layout.canvas
    assert s.hit(c.x0, c.y0) == ("canvas", "place") and s.hit(c.x1 - 1, c.y1 - 1)[0] == "canvas"
    h, w = s.task.data_shape
    for u, v in ((0, 0), (w / 2, h / 3), (w - 1, h - 1)):
        x, y = s.mapper.to_screen(u, v)
        assert s.hit(x, y)[0] == "canvas"
        u2, v2 = s.mapper.to_data(x, y)
        assert abs(u2 - u) <= max(0.5, s.mapper.sx / 2) + 1e-9
        assert abs(v2 - v) <= max(0.5, s.mapper.sy / 2) + 1e-9


@pytest.mark.parametrize("variant", SAMPLE)
@pytest.mark.parametrize("task_id", task_ids())
def test_annotator_succeeds_and_replay_is_bit_exact_in_a_variant(task_id, variant):
    for seed in SEEDS:
        default = run_annotator(task_id, seed)
        frames: list = []
        rec = run_annotator(task_id, seed, frames=frames, ui_variant=variant)
        assert rec.ui_variant == variant and rec.theme == get_variant(variant).theme
        assert rec.done
        assert rec.success or not default.success, f"seed {seed}: fails only in {variant}"
        again = EpisodeRecord.from_dict(json.loads(json.dumps(rec.to_dict())))
        assert again.ui_variant == variant
        replayed = list(replay(again))
        assert [frame_hash(f) for f in replayed] == [frame_hash(f) for f in frames]


@pytest.mark.parametrize("variant", [v for v in UI_VARIANTS if v not in SAMPLE])
def test_annotator_finishes_in_every_other_variant(variant):
    for task_id in task_ids():
        rec = run_annotator(task_id, 0, ui_variant=variant)
        assert rec.done and (rec.success or not run_annotator(task_id, 0).success), task_id


def test_records_without_a_variant_are_the_default_and_replay_as_before():
    frames: list = []
    rec = run_annotator("colored_dot_tracking", 0, frames=frames)
    assert rec.ui_variant == "default" and rec.theme == "dark"
    d = rec.to_dict()
    del d["ui_variant"]  # a record written before variants existed
    old = EpisodeRecord.from_dict(d)
    assert old.ui_variant == "default"
    assert [frame_hash(f) for f in replay(old)] == [frame_hash(f) for f in frames]
    explicit: list = []
    run_annotator("colored_dot_tracking", 0, frames=explicit, theme="dark", ui_variant="default")
    assert [frame_hash(f) for f in explicit] == [frame_hash(f) for f in frames]


def test_an_explicit_theme_overrides_the_variants():
    s = Session("neuron_tracking", 3, theme="light", ui_variant="high-contrast")
    assert s.theme == "light" and s.ui_variant == "high-contrast"
    frames: list = []
    rec = run_annotator("neuron_tracking", 3, frames=frames, theme="light", ui_variant="bottom")
    assert rec.theme == "light" and rec.ui_variant == "bottom"
    assert [frame_hash(f) for f in replay(rec)] == [frame_hash(f) for f in frames]
    assert frame_hash(frames[0]) != frame_hash(Session("neuron_tracking", 3, ui_variant="bottom").render())
    with pytest.raises(ValueError, match="known variants"):
        Session("neuron_tracking", 0, ui_variant="nope")


def test_render_hands_out_copies_and_frame_is_read_only():
    s = Session("colored_dot_tracking", 0, ui_variant="left")
    a = s.render()
    a[:] = 0  # the caller's copy: the session's buffer is untouched
    b = s.render()
    assert b.any() and not np.shares_memory(a, b)
    f = s.frame()
    assert not f.flags.writeable and np.array_equal(f, b)
    out = np.empty_like(b)
    assert s.render(out=out) is out and np.array_equal(out, b)


def test_generated_dataset_spreads_episodes_over_variants_and_replays_them(tmp_path):
    from annobc.data import EpisodeStore, Plan, generate
    from annobc.data.schema import EPISODE_SCHEMA, SCHEMA_VERSION

    assert SCHEMA_VERSION == 5 and "ui_variant" in EPISODE_SCHEMA.names
    names = ("default", "left-light", "bottom")
    plan = Plan(tasks=("colored_dot_tracking",), episodes_per_task=7, ui_variant=",".join(names),
                shard_size=4)
    card = generate(tmp_path / "ds", plan, progress=False)
    assert card["ui_variant"] == ",".join(names) and list(card["ui_variants"]) == list(names)
    assert card["ui_variants"]["bottom"]["panel"] == "bottom" and card["theme"] is None
    store = EpisodeStore(tmp_path / "ds")
    seen = set()
    for eid in store.episode_ids():
        rec = store.record(eid)
        assert rec.ui_variant == plan.variant_of(rec.seed) == store.meta(eid)["ui_variant"]
        assert rec.theme == get_variant(rec.ui_variant).theme
        seen.add(rec.ui_variant)
        frames: list = []
        run_annotator(rec.task_id, rec.seed, frames=frames, ui_variant=rec.ui_variant)
        assert [frame_hash(f) for f in replay(rec)] == [frame_hash(f) for f in frames]
    assert seen == set(names)
    with pytest.raises(ValueError, match="unknown GUI variant"):
        Plan(tasks=("colored_dot_tracking",), episodes_per_task=3, ui_variant="nope")
    assert Plan(tasks=(), episodes_per_task=3, ui_variant="all").variants() == tuple(UI_VARIANTS)


def test_web_recorder_records_the_variant_and_recovers_it(tmp_path):
    from annobc.web.recorder import Recorder, read_journal, record_from_journal

    rec = Recorder(tmp_path / "human", ui_variant="bottom-light")
    live = rec.new_session("s" * 20, "colored_dot_tracking", "kim")
    assert live.session.ui_variant == "bottom-light" and live.record.ui_variant == "bottom-light"
    lay = live.session.layout
    r = lay.buttons["+Z"]
    rec.click(live, r.x0 + 1, r.y0 + 1, 10.0)
    header, clicks, _ = read_journal(live.journal)
    assert header["ui_variant"] == "bottom-light" and header["theme"] == "light"
    again = record_from_journal(header, clicks)
    assert again.ui_variant == "bottom-light" and again.steps[0].element == "+Z"
    del header["ui_variant"]  # a journal from before variants: the default's
    assert record_from_journal(header, clicks).ui_variant == "default"


def test_cli_takes_a_ui_variant(tmp_path, capsys):
    from annobc.cli.main import build_parser, main

    assert main(["play", "colored_dot_tracking", "--ui-variant", "bottom", "--out",
                 str(tmp_path / "e.gif"), "--max-frames", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ui_variant"] == "bottom" and (tmp_path / "e.gif").exists()
    p = build_parser()
    assert p.parse_args(["eval", "run", "--ui-variant", "left"]).ui_variant == "left"
    assert p.parse_args(["eval", "run"]).ui_variant is None
    assert p.parse_args(["serve", "--ui-variant", "large-font"]).ui_variant == "large-font"
    assert p.parse_args(["serve"]).theme is None
    assert p.parse_args(["generate", "--episodes-per-task", "3", "--out", "x",
                         "--ui-variant", "all"]).ui_variant == "all"
    for argv in (["play", "colored_dot_tracking", "--ui-variant", "nope"],
                 ["generate", "--episodes-per-task", "3", "--out", "x", "--ui-variant", "a,nope"],
                 ["serve", "--ui-variant", "nope"]):
        with pytest.raises(SystemExit):
            p.parse_args(argv)
    assert "known variants" in capsys.readouterr().err
    assert main(["generate", "--tasks", "colored_dot_tracking", "--episodes-per-task", "3",
                 "--out", str(tmp_path / "ds"), "--ui-variant", "all", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["ui_variant"] == "all" and len(card["ui_variants"]) == len(UI_VARIANTS)
