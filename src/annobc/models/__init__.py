"""Policy models: encoders, temporal transformer, click heads. Knows the screen size, not the tasks."""

from annobc.models.config import PRESETS, PolicyConfig, preset
from annobc.models.policy import ClickPolicy

__all__ = ["ClickPolicy", "PRESETS", "PolicyConfig", "preset"]
