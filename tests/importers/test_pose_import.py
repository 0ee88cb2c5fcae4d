"""annobc import pose: a DeepLabCut labeled-data folder -> animal_limb_tracking."""

import json

import numpy as np
import pytest

from annobc.importers import import_pose
from annobc.tasks import Session, run_annotator

from .conftest import write_dlc

TASK = "animal_limb_tracking"


def grid_truth(folder, inst):
    """The labelled keypoints of an instance's frames, moved onto the grid by its crops."""
    truth = json.loads((folder / "truth.json").read_text())
    rows = [int(n[3:7]) for n in inst["frame_files"]]
    f = inst["scale"]
    return np.stack([(np.array(truth[r]) + 0.5 - np.array(xy)) * f - 0.5
                     for r, xy in zip(rows, inst["crop_xy"])])


def same_instances(dir_a, card_a, dir_b, card_b) -> bool:
    """The same frames and keypoints (the meta, naming the table, may differ)."""
    for ia, ib in zip(card_a["instances"], card_b["instances"], strict=True):
        with np.load(dir_a / ia["file"]) as za, np.load(dir_b / ib["file"]) as zb:
            if not all(np.array_equal(za[k], zb[k]) for k in ("images", "gt")):
                return False
    return True


def test_import_maps_bodyparts_onto_the_keypoints(dlc_folder, tmp_path):
    out = tmp_path / "imp"
    card = import_pose(dlc_folder, out)
    assert card["mapping"]["keypoints"] == {"NOSE": "nose", "TAIL": "tail_base", "FL": "front_left",
                                            "FR": "front_right", "HL": "hind_left",
                                            "HR": "hind_right"}
    n = sum(i["n_frames"] for i in card["instances"])
    assert n == len(list(dlc_folder.glob("*.png"))) and all(i["n_frames"] <= 8 for i in card["instances"])
    for inst in card["instances"]:
        t = Session(TASK, 0, {"instance": str(out / inst["file"])}).task
        assert t.n_frames == inst["n_frames"]
        assert np.allclose(t.gt, grid_truth(dlc_folder, inst), atol=2e-2)
        assert t.gt.min() >= 5 and t.gt.max() <= 106  # the animal well inside the grid
        # The body is about as long as a generated animal's.
        assert 30 <= np.median(np.hypot(*(t.gt[:, 0] - t.gt[:, 1]).T)) <= 48


def test_annotator_labels_every_imported_instance(dlc_folder, tmp_path):
    out = tmp_path / "imp"
    card = import_pose(dlc_folder, out, frames_per_instance=5)
    for i, inst in enumerate(card["instances"]):
        for seed in range(3 * i, 3 * i + 3):
            rec = run_annotator(TASK, seed, params={"instance": str(out / inst["file"])})
            assert rec.success and rec.done, (inst["name"], seed, rec.score)
    s = Session(TASK, 0, {"instance": str(out / card["instances"][0]["file"])})
    assert s.task.status()[0].startswith("FRAME 1/5  KEY NOSE")


def test_h5_table_new_csv_index_and_a_mapping_file(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("tables")
    a = import_pose(write_dlc(tmp_path / "a"), tmp_path / "ia")
    # The same labels in DeepLabCut's .h5 (a pandas table under key df_with_missing).
    vid = write_dlc(tmp_path / "b")
    csv = vid / "CollectedData_me.csv"
    df = pd.read_csv(csv, header=[0, 1, 2], index_col=0)
    df.columns = df.columns.set_names(["scorer", "bodyparts", "coords"])
    df.to_hdf(vid / "CollectedData_me.h5", key="df_with_missing", mode="w")
    csv.unlink()
    b = import_pose(vid, tmp_path / "ib")
    assert b["sources"][0]["path"].endswith(".h5")
    assert same_instances(tmp_path / "ia", a, tmp_path / "ib", b)
    # Newer DeepLabCut CSVs: three index columns; other body part names, named by a mapping.
    parts = ("snout", "tb", "paw_a", "paw_b", "paw_c", "paw_d")
    vid = write_dlc(tmp_path / "c", parts=parts, extra=("ear",), new_index=True)
    mapping = tmp_path / "map.yaml"
    mapping.write_text("keypoints: {NOSE: snout, TAIL: tb, FL: paw_a, FR: paw_b, HL: paw_c, "
                       "HR: paw_d}\nignore: [ear]\n")
    c = import_pose(vid, tmp_path / "ic", mapping=mapping)
    assert same_instances(tmp_path / "ia", a, tmp_path / "ic", c)
    assert c["mapping"]["ignore"] == ["ear"] and any(s["role"] == "mapping" for s in c["sources"])


def test_frames_missing_a_keypoint_are_left_out(tmp_path):
    vid = write_dlc(tmp_path / "d")
    csv = vid / "CollectedData_me.csv"
    lines = csv.read_text().splitlines()
    cells = lines[4].split(",")
    cells[5] = cells[6] = ""  # front_left of the second frame not labelled
    lines[4] = ",".join(cells)
    csv.write_text("\n".join(lines) + "\n")
    card = import_pose(vid, tmp_path / "out")
    assert sum(i["n_frames"] for i in card["instances"]) == len(lines) - 4
    assert any("img0001.png" in n for n in card["notes"])
