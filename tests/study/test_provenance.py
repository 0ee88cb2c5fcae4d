"""A study's provenance names the code its units were computed with, not only the checkout's state
when the report is written (a study may span commits: killed, updated, rerun)."""

import json

from annobc.study.common import Study, code_text, provenance


def test_units_record_the_code_they_were_computed_with(tmp_path):
    study = Study("emergence", "micro", tmp_path / "s", {"k": 1}, progress=False).open()
    study.unit("a", lambda: {"x": 1})
    study.code = {"commit": "f" * 40, "dirty": False}  # as a later process at another commit
    study.unit("b", lambda: {"x": 2})
    study.unit("a", lambda: {"x": 3})  # reused: keeps the code it was computed with
    (tmp_path / "s" / "units" / "old.json").write_text(json.dumps({"unit": "old"}))  # no record
    prov = provenance(study)
    counts = {(u["commit"], u["dirty"]): u["units"] for u in prov["unit_code"]}
    assert counts[("f" * 40, False)] == 1 and counts[(None, None)] == 1
    assert sum(counts.values()) == 3 and len(counts) == 3
    text = code_text(prov)
    assert "1 at ffffffffffff" in text and "a commit not recorded" in text
