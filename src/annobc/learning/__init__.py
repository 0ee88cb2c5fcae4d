"""What training and evaluation share: the behavioural-cloning objective, teacher-forced scoring and
checkpoints (training writes them, evaluation reads them).

Above models and data, below train and eval (which never import each other)."""

from annobc.learning.loss import ClickLoss, LossConfig
from annobc.learning.teacher_forced import teacher_forced

__all__ = ["ClickLoss", "LossConfig", "teacher_forced"]
