"""Mode collapse read from a quality curve (`trilemma.metrics.collapse`), on constructed curves."""

from trilemma.metrics.collapse import RECALL_DROP, detect_collapse


def curve(*points):
    """Points (step, classes covered, recall); None leaves a figure out."""
    out = []
    for step, classes, recall in points:
        point = {"step": step, "fid": 100.0}
        if classes is not None:
            point["classes_covered"] = classes
        if recall is not None:
            point["recall"] = recall
        out.append(point)
    return out


def test_a_model_that_improves_shows_no_collapse():
    assert detect_collapse(curve((100, 8, 0.2), (200, 10, 0.5), (300, 10, 0.7))) is None
    assert detect_collapse([]) is None and detect_collapse(curve((100, 10, 0.8))) is None


def test_two_classes_lost_is_collapse_one_is_noise():
    assert detect_collapse(curve((100, 10, None), (200, 9, None), (300, 10, None))) is None
    found = detect_collapse(curve((100, 10, None), (200, 10, None), (300, 8, None), (400, 7, None)))
    assert (found["step"], found["after_step"]) == (300, 200)
    assert found["signals"] == ["classes covered fell from 10 (step 100) to 8"]
    assert found["recovered"] is False


def test_modes_need_ten_percent_of_the_best():
    points = [{"step": 1, "modes_covered": 25}, {"step": 2, "modes_covered": 23}]
    assert detect_collapse(points) is None  # 2 of 25 is under 10% (3)
    found = detect_collapse([*points, {"step": 3, "modes_covered": 22}])
    assert found["step"] == 3 and found["signals"] == ["modes covered fell from 25 (step 1) to 22"]


def test_recall_falling_more_than_the_margin_from_its_best_is_collapse():
    ok = curve((1, None, 0.80), (2, None, 0.80 - RECALL_DROP + 0.01))
    assert detect_collapse(ok) is None
    found = detect_collapse(curve((1, None, 0.5), (2, None, 0.8), (3, None, 0.75), (4, None, 0.65)))
    assert found["step"] == 4 and found["after_step"] == 3
    assert found["signals"] == ["recall fell from 0.80 (step 2) to 0.65"]


def test_the_first_point_that_shows_it_is_where_it_began_and_recovery_is_noted():
    # Points come in any order; the rule reads them by step.
    found = detect_collapse(curve((300, 10, 0.7), (100, 10, 0.7), (200, 6, 0.4)))
    assert found["step"] == 200 and found["recovered"] is True
    assert found["signals"] == ["classes covered fell from 10 (step 100) to 6",
                                "recall fell from 0.70 (step 100) to 0.40"]
