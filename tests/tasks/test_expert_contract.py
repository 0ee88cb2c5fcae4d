"""The expert contract (annobc.tasks.contract), checked on every registered task at CI counts.

benchmarks/expert_contract.py measures the same figures at 200 seeds.
"""

import pytest

from annobc.tasks import contract, get_annotator_class, get_task_class, run_annotator, task_ids
from annobc.tasks.annotator import Annotator

TASKS = task_ids()
SEEDS = range(1000, 1020)  # not the seeds the per-task tests use


@pytest.mark.parametrize("task_id", TASKS)
def test_every_task_has_an_expert(task_id):
    ann = get_annotator_class(task_id)
    assert issubclass(ann, Annotator)
    assert ann.next_intent is not Annotator.next_intent


@pytest.mark.parametrize("task_id", TASKS)
def test_own_states_the_expert_names_the_scripts_click(task_id):
    r = contract.own_state_agreement(task_id, range(10))
    assert r["agreement"] >= 0.99, r


@pytest.mark.parametrize("kind", contract.ROLLIN_KINDS)
@pytest.mark.parametrize("n", (5, 20, 60))
@pytest.mark.parametrize("task_id", TASKS)
def test_foreign_states_the_expert_finishes(task_id, n, kind):
    r = contract.foreign_state_success(task_id, SEEDS, kind, n)
    assert r["success"] >= 0.95, r
    assert r["max_clicks"] <= contract.MAX_CLICKS


@pytest.mark.parametrize("task_id", TASKS)
def test_the_expert_removes_a_standing_mistake(task_id):
    r = contract.mistake_removal(task_id, cases=20)
    assert r["cases"] >= 10, r
    assert r["removal_rate"] >= 0.95, r


@pytest.mark.parametrize("task_id", TASKS)
def test_every_step_records_where_its_target_is(task_id):
    """Steps that name a target item with a place on the view carry its screen point."""
    cls = get_task_class(task_id)
    rec = run_annotator(task_id, seed=3)
    with_target = [s for s in rec.steps if s.target >= 0]
    assert with_target, "the annotator names no target item"
    pointed = [s for s in with_target if s.target_x >= 0]
    assert len(pointed) >= 0.5 * len(with_target), (len(pointed), len(with_target))
    w, h = rec.screen
    assert all(0 <= s.target_x < w and 0 <= s.target_y < h for s in pointed)
    assert all(s.target_x == -1 and s.target_y == -1 for s in rec.steps if s.target < 0)
    assert cls.correction_length >= 1
