"""annobc: behavioural cloning for scientific annotation GUIs.

Importing the package registers one Gymnasium env per task, ``annobc/<task_id>-v0``.
"""

__version__ = "0.1.0"

from annobc import env as _env  # noqa: E402,F401  (registers the Gymnasium envs)
