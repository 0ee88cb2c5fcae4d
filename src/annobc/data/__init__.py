"""Datasets: parallel generation, the replayable Parquet store, materialised frames, and (in
``annobc.data.windows``, which needs torch) the windowed PyTorch dataset."""

from annobc.data.frames import append_episodes, load_frames, save_frames
from annobc.data.generate import SPLITS, Plan, generate, parse_task_params, resolve_tasks
from annobc.data.schema import SCHEMA_VERSION
from annobc.data.store import DatasetError, EpisodeStore

__all__ = ["DatasetError", "EpisodeStore", "Plan", "SCHEMA_VERSION", "SPLITS", "append_episodes", "parse_task_params",
           "generate", "load_frames", "resolve_tasks", "save_frames"]
