"""curve.jsonl as a kill leaves it: a half-written last line is skipped when read, cut off before
the next point is written, and no point is ever recorded twice."""

from __future__ import annotations

import json

import pytest

from trilemma.compare.curve import append_curve, cut_partial_line, read_curve
from trilemma.compare.runner import prepare_output
from trilemma.errors import RunError


def test_a_half_written_last_line_is_skipped_then_cut_off(tmp_path):
    path = tmp_path / "curve.jsonl"
    append_curve(path, {"step": 10, "fraction": 0.25, "fid": 90.0})
    with open(path, "a") as f:
        f.write('{"step": 20, "fraction": 0.5, "fi')  # the process died here
    assert read_curve(path) == [{"step": 10, "fraction": 0.25, "fid": 90.0}]
    append_curve(path, {"step": 20, "fraction": 0.5, "fid": 80.0})
    lines = path.read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [10, 20]


def test_a_point_on_file_twice_is_read_once_and_bytes_that_are_not_json_are_skipped(tmp_path):
    path = tmp_path / "curve.jsonl"
    path.write_bytes(b'{"step": 10, "fraction": 0.5, "fid": 1.0}\n\xff\xfe\n[1, 2]\n'
                     b'{"step": 10, "fraction": 0.5, "fid": 2.0}\n')
    assert read_curve(path) == [{"step": 10, "fraction": 0.5, "fid": 1.0}]
    assert read_curve(tmp_path / "none.jsonl") == []


def test_cutting_leaves_whole_lines_alone(tmp_path):
    path = tmp_path / "curve.jsonl"
    path.write_text('{"step": 1}\n')
    cut_partial_line(path)
    assert path.read_text() == '{"step": 1}\n'
    path.write_text('{"st')
    cut_partial_line(path)
    assert path.read_text() == ""


def test_a_comparison_killed_while_writing_its_settings_starts_again(tmp_path, small_settings):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".compare.json.5a5a5a5a.tmp").write_text('{"da')
    assert prepare_output(out, small_settings()) is False
    assert sorted(p.name for p in out.iterdir()) == ["compare.json"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "thesis.tex").write_text("precious")
    with pytest.raises(RunError, match="not empty"):
        prepare_output(tmp_path / "other", small_settings())
