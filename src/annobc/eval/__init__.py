"""Evaluation: teacher-forced metrics and closed-loop rollouts."""
