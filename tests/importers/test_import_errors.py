"""Each bad input is one line naming the file and what is wrong, and leaves nothing in the output
folder (imports are written to a temporary folder renamed at the end)."""

import numpy as np
import pytest

from annobc.cli.main import main

from .conftest import tifffile, write_ctc, write_dlc, write_swc


def run_failing(argv, capsys, out, must: tuple[str, ...]):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("annobc import: error: ")
    for text in must:
        assert text in err, (text, err)
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    return err


def test_a_skeleton_outside_the_volume(neuron_files, tmp_path, capsys):
    bad = write_swc(tmp_path / "far.swc", np.array([[10.0, 10.0, 2.0], [10.0, 10.0, 3.0],
                                                    [500.0, 10.0, 4.0]]), 2.0)
    out = tmp_path / "out"
    run_failing(["import", "neuron", str(neuron_files["volume"]), str(neuron_files["target"]),
                 str(bad), "--out", str(out)], capsys, out,
                ("far.swc", "outside the volume", "stack.tif", "sample 3"))


def test_a_volume_of_the_wrong_dimensionality(neuron_files, tmp_path, capsys):
    flat = tmp_path / "slice.tif"
    tifffile.imwrite(flat, neuron_files["array"][0])
    out = tmp_path / "out"
    run_failing(["import", "neuron", str(flat), str(neuron_files["target"]), "--out", str(out)],
                capsys, out, ("slice.tif", "2 non-singleton dimension", "3D stack"))
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, np.zeros((2, 3, 20, 20), np.uint8), photometric="minisblack")
    run_failing(["import", "neuron", str(movie), str(neuron_files["target"]), "--out", str(out)],
                capsys, out, ("movie.tif", "4 non-singleton dimension"))


def test_a_csv_with_unknown_bodyparts(tmp_path, capsys):
    vid = write_dlc(tmp_path / "dlc", extra=("ear_left", "spine"))
    out = tmp_path / "out"
    run_failing(["import", "pose", str(vid), "--out", str(out)], capsys, out,
                ("CollectedData_me.csv", "unknown bodyparts", "ear_left", "spine", "--mapping"))
    mapping = tmp_path / "map.json"
    mapping.write_text('{"keypoints": {"NOSE": "nose", "TAIL": "tail_base", "FL": "front_left", '
                       '"FR": "front_right", "HL": "hind_left", "HR": "hind_right"}, '
                       '"ignore": ["ear_left"]}')
    run_failing(["import", "pose", str(vid), "--mapping", str(mapping), "--out", str(out)], capsys,
                out, ("CollectedData_me.csv", "unknown bodyparts", "spine", "map.json"))


def test_a_track_file_that_names_missing_labels(tmp_path, capsys):
    tracks = {1: (0, 6, 0), 2: (7, 15, 1), 3: (7, 15, 1), 4: (0, 15, 0), 5: (0, 15, 0),
              9: (2, 5, 0)}
    tra = write_ctc(tmp_path / "ctc", tracks)
    out = tmp_path / "out"
    run_failing(["import", "tracks", str(tra), "--out", str(out)], capsys, out,
                ("man_track.txt", "line 6", "label 9", "missing from man_track002.tif"))


def test_an_existing_output_folder_is_kept(tmp_path, capsys):
    tra = write_ctc(tmp_path / "ctc")
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["import", "tracks", str(tra), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
    assert main(["import", "tracks", str(tra), "--out", str(out), "--force"]) == 0
    assert not (out / "keep.txt").exists() and (out / "import.json").exists()


def test_the_cli_prints_what_it_made(tmp_path, capsys):
    tra = write_ctc(tmp_path / "ctc")
    out = tmp_path / "out"
    assert main(["import", "tracks", str(tra), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "cell_lineage_tracking: 3 instance(s) (train 1, val 1, test 1)" in text
    assert f"--param cell_lineage_tracking.instance={out.resolve()}" in text
    with pytest.raises(SystemExit):
        main(["import", "neuron", "--out", str(out)])  # argparse: the volume is required
