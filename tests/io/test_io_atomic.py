"""The one atomic writer: a failure while writing leaves the previous file as it was, and no
temporary file behind."""

import json
import os
import stat

import numpy as np
import pytest

from trilemma.checkpoints import write_json_atomic
from trilemma.io import write_atomic, write_json, write_npz, write_text


class Interrupted(Exception):
    pass


def _half_then_fail(f):
    f.write(b'{"half": ')
    raise Interrupted


def test_a_failure_while_writing_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    write_json(path, {"fid": 1.5})
    with pytest.raises(Interrupted):
        write_atomic(path, _half_then_fail)
    assert json.loads(path.read_text()) == {"fid": 1.5}
    assert os.listdir(tmp_path) == ["results.json"]


def test_a_failure_at_the_rename_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "latest.json"
    write_json_atomic(path, {"step": 10})  # the run folder's records go through the same writer

    def refuse(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_json_atomic(path, {"step": 20})
    assert json.loads(path.read_text()) == {"step": 10}
    assert os.listdir(tmp_path) == ["latest.json"]


def test_written_files_read_back_and_get_the_usual_permissions(tmp_path):
    write_text(tmp_path / "a.csv", "x,y\r\n1,2\r\n")
    assert (tmp_path / "a.csv").read_bytes() == b"x,y\r\n1,2\r\n"  # newlines as given
    x = np.arange(12, dtype=np.uint8).reshape(3, 4)
    write_npz(tmp_path / "s.npz", {"x": x}, {"sampler": "ddim"})
    with np.load(tmp_path / "s.npz", allow_pickle=False) as arrays:
        np.testing.assert_array_equal(arrays["x"], x)
        assert json.loads(str(arrays["provenance"])) == {"sampler": "ddim"}
    # Like a file opened for writing: readable by others as the umask allows, not 0600.
    umask = os.umask(0)
    os.umask(umask)
    (tmp_path / "plain").write_text("")
    expected = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert stat.S_IMODE((tmp_path / "s.npz").stat().st_mode) == expected == 0o666 & ~umask
