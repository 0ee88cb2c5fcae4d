"""annobc import tracks: a Cell Tracking Challenge folder -> cell_lineage_tracking."""

import numpy as np

from annobc.importers import import_tracks
from annobc.importers.tracks import find_images
from annobc.tasks import Session, run_annotator

TASK = "cell_lineage_tracking"


def test_import_maps_lineages_onto_the_task(ctc_folder, tmp_path):
    assert find_images(ctc_folder) == ctc_folder.parent.parent / "01"
    out = tmp_path / "imp"
    card = import_tracks(ctc_folder, out)
    # One instance per lineage root (tracks 1, 4 and 5); split one each.
    assert [i["name"] for i in card["instances"]] == ["lineage-00001", "lineage-00004",
                                                      "lineage-00005"]
    assert {s: len(n) for s, n in card["splits"].items()} == {"train": 1, "val": 1, "test": 1}
    roles = [s["role"] for s in card["sources"]]
    assert roles.count("tracks") == 1 and roles.count("labels") == 16 and roles.count("frames") == 16
    t = Session(TASK, 0, {"instance": str(out / "instances" / "lineage-00001.npz")}).task
    assert t.n_frames == 16 and t.div_frames == (7,)
    # Track 1 is followed to frame 6, then its daughter nearer its last position: track 2.
    nuclei = {k: int(np.bincount(t._labels[0].ravel())[k + 1]) for k in range(len(t.cells))}
    assert t.cells[0].children and len(t.cells[0].children) == 2
    near, far = t.cells[0].children
    assert set(t.fol[:7]) == {0} and set(t.fol[7:]) <= {near, far} and len(set(t.fol[7:])) == 1
    d2 = np.hypot(*(t.pos[t.fol[7], 7] - t.pos[0, 6]))
    other = far if t.fol[7] == near else near
    assert d2 < np.hypot(*(t.pos[other, 7] - t.pos[0, 6]))
    assert nuclei[0] > 40  # the outlined nucleus covers its mask on the grid
    # A click is inside a nucleus where its mask is.
    u, v = t.centre(0, 0)
    assert t.inside(0, 0, u, v) and not t.inside(0, 0, u + 30, v)


def test_annotator_follows_every_imported_lineage(ctc_folder, tmp_path):
    out = tmp_path / "imp"
    card = import_tracks(ctc_folder, out)
    for i, inst in enumerate(card["instances"]):
        f = str(out / inst["file"])
        for seed in range(3 * i, 3 * i + 3):
            rec = run_annotator(TASK, seed, params={"instance": f})
            assert rec.success and rec.done, (inst["name"], seed, rec.score)
    # The first frame is the raw frame (tinted as the task's stain), the target outlined.
    s = Session(TASK, 0, {"instance": str(out / "instances" / "lineage-00001.npz")})
    assert s.task.status()[0] == "T 0/15  POINTS 0/16"
    assert s.render().std() > 10


def test_import_is_deterministic(ctc_folder, tmp_path):
    a = import_tracks(ctc_folder, tmp_path / "a", max_instances=2)
    b = import_tracks(ctc_folder, tmp_path / "b", max_instances=2)
    assert a == b and len(a["instances"]) == 2
