import numpy as np
import pytest
import torch

from trilemma.capabilities.masks import make_mask
from trilemma.errors import TrilemmaError


def test_center_hides_the_central_half_of_each_side():
    mask = make_mask("center", 2, 28, 28)
    assert mask.shape == (2, 1, 28, 28) and mask.dtype == torch.bool
    expected = torch.zeros(28, 28, dtype=torch.bool)
    expected[7:21, 7:21] = True
    assert torch.equal(mask[0, 0], expected) and int(mask[1].sum()) == 14 * 14


@pytest.mark.parametrize("name, region", [("left", (slice(None), slice(0, 4))), ("right", (slice(None), slice(4, 8))),
                                          ("top", (slice(0, 4), slice(None))), ("bottom", (slice(4, 8), slice(None)))])
def test_halves(name, region):
    mask = make_mask(name, 1, 8, 8)[0, 0]
    assert mask[region].all() and int(mask.sum()) == 32


def test_random_mask_is_seeded_and_has_the_asked_density():
    a, b = make_mask("random:0.3", 50, 8, 8, seed=1), make_mask("random:0.3", 50, 8, 8, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, make_mask("random:0.3", 50, 8, 8, seed=2))
    assert abs(a.float().mean().item() - 0.3) < 0.05


def test_mask_files_of_both_shapes(tmp_path):
    one = np.zeros((8, 8), dtype=bool)
    one[0, 0] = True
    np.save(tmp_path / "one.npy", one)
    assert make_mask(str(tmp_path / "one.npy"), 3, 8, 8)[:, 0, 0, 0].all()
    per_image = np.zeros((3, 8, 8), dtype=np.uint8)
    per_image[1, 2, 3] = 1
    np.save(tmp_path / "each.npy", per_image)
    mask = make_mask(str(tmp_path / "each.npy"), 3, 8, 8)
    assert int(mask.sum()) == 1 and mask[1, 0, 2, 3]


@pytest.mark.parametrize("spec, message", [("middle", "unknown mask"), ("random:1.5", "0 < P < 1"),
                                           ("random:x", "needs a number")])
def test_bad_mask_names(spec, message):
    with pytest.raises(TrilemmaError, match=message):
        make_mask(spec, 1, 8, 8)


def test_wrong_mask_shape(tmp_path):
    np.save(tmp_path / "m.npy", np.zeros((28, 28), dtype=bool))
    with pytest.raises(TrilemmaError, match=r"expected \(8, 8\) or \(4, 8, 8\)"):
        make_mask(str(tmp_path / "m.npy"), 4, 8, 8)
