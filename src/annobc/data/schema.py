"""The dataset schema: every column, its type and its meaning. Versioned; see docs/data.md.

A dataset is a folder:

    dataset.json                    the card: versions, tasks and params, seed ranges, stats
    plan.json                       the generation plan (what `annobc generate` was asked for)
    episodes/<shard>.parquet        one row per episode (written last: a shard exists when this does)
    steps/<shard>.parquet           one row per click, many episodes per file
    frames/<episode_id>.npy         only for episodes whose frames are materialised (not replayable)
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 5  # 2: the learner column; 3: the label columns; 4: the target geometry;
# 5: the ui_variant episode column (GUI variants, docs/tasks/variants.md)

# (name, arrow type, meaning)
STEP_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("episode_id", pa.string(), "episode this click belongs to (see episodes.episode_id)"),
    ("step", pa.int32(), "0-based index of the click in its episode"),
    ("x", pa.int16(), "click column in screen pixels, 0 <= x < screen width; the click is made on "
                      "the frame rendered before it (frame `step`)"),
    ("y", pa.int16(), "click row in screen pixels, 0 <= y < screen height"),
    ("element", pa.string(), "what the click hit: a button label, 'canvas', or null (nothing)"),
    ("category", pa.string(), "navigate | place | view | select | undo | done | invalid"),
    ("phase", pa.string(), "latent: survey | navigate | inspect | place | select | verify | "
                           "correct | finish"),
    ("position", pa.float64(), "latent: where in the data axis the view was (z/Z, t/T, ...), [0, 1]"),
    ("target", pa.int16(), "latent: index of the ground-truth item being worked on, -1 if none"),
    ("target_x", pa.int16(), "latent: screen column of the target item on the view before the click "
                             "(Task.target_point: the dot, the neurite's cross-section on this slice, "
                             "the tracked cell, the landmark, ...); -1 where it has no point there"),
    ("target_y", pa.int16(), "latent: screen row of the target item; -1 where none"),
    ("target_offset", pa.int16(), "latent: how many steps the view is from the target item along the "
                                  "data axis (Task.target_offset, e.g. slices from a dot's brightest "
                                  "one); null where the task has no such place"),
    ("mistake_present", pa.bool_(), "latent: a wrong annotation existed before this click"),
    ("is_mistake", pa.bool_(), "latent: this click made a wrong annotation"),
    ("is_correction", pa.bool_(), "latent: this click is part of fixing a mistake"),
    ("annotated", pa.bool_(), "this click added or changed an annotation"),
    ("timestamp_ms", pa.float64(), "milliseconds since the episode started, where a person "
                                   "clicked; null for virtual annotators"),
    ("learner", pa.bool_(), "a learned policy made this click (a closed-loop episode, or the roll-in "
                            "of a takeover episode): context, not a click to imitate"),
    ("label_x", pa.int16(), "an expert's click column for the state before this click, to imitate "
                            "instead of the learner's click (a DAgger label); -1 where none"),
    ("label_y", pa.int16(), "the expert's click row; -1 where none"),
    ("label_element", pa.string(), "what the expert's click would hit; null where no label"),
    ("label_category", pa.string(), "the expert's click category; null where no label"),
]

EPISODE_COLUMNS: list[tuple[str, pa.DataType, str]] = [
    ("episode_id", pa.string(), "unique id: '<task_id>-<split>-<seed>' for generated episodes"),
    ("task_id", pa.string(), "task id (annobc tasks)"),
    ("task_version", pa.int16(), "task version; the env id is annobc/<task_id>-v<version>"),
    ("params", pa.string(), "task parameters as JSON (the scene generator's arguments)"),
    ("seed", pa.int64(), "scene seed: (task, version, params, seed) regenerates the scene"),
    ("split", pa.string(), "train | val | test (by seed range, see dataset.json)"),
    ("persona", pa.string(), "annotator persona, or 'human:<name>' / 'policy:<name>'"),
    ("renderer_version", pa.string(), "annobc.gui.RENDERER_VERSION the frames were rendered with"),
    ("screen_w", pa.int16(), "screen width in pixels"),
    ("screen_h", pa.int16(), "screen height in pixels"),
    ("theme", pa.string(), "GUI theme name"),
    ("ui_variant", pa.string(), "GUI variant the episode was shown in (annobc.gui.UI_VARIANTS: panel "
                                "side, button order and size, font scale; 'default' is the layout "
                                "of schema 4); `theme` is the variant's theme unless one was given"),
    ("length", pa.int32(), "number of clicks"),
    ("score", pa.float32(), "task score of the final annotation state, [0, 1]"),
    ("success", pa.bool_(), "task success of the final annotation state"),
    ("done", pa.bool_(), "the episode ended with DONE (not cut by the step cap)"),
    ("frames_stored", pa.bool_(), "frames are materialised in frames/<episode_id>.npy instead of "
                                  "being re-rendered by replay"),
]


def arrow_schema(columns) -> pa.Schema:
    return pa.schema([pa.field(n, t, nullable=True, metadata={"meaning": m}) for n, t, m in columns])


STEP_SCHEMA = arrow_schema(STEP_COLUMNS)
EPISODE_SCHEMA = arrow_schema(EPISODE_COLUMNS)


def features() -> dict:
    """The card's description of every column (LeRobot-style `features`)."""
    def desc(cols):
        return {n: {"dtype": str(t), "meaning": m} for n, t, m in cols}

    return {"steps": desc(STEP_COLUMNS), "episodes": desc(EPISODE_COLUMNS),
            "frames": {"dtype": "uint8", "shape": ["screen_h", "screen_w", 3],
                       "meaning": "RGB screen; frame k is the screen before click k, frame "
                                  "`length` the final screen; re-rendered by replay unless stored"}}
