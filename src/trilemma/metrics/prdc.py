"""Precision, recall (Kynkäänniemi et al. 2019) and density, coverage (Naeem et al. 2020).

Each real sample owns a ball whose radius is the distance to its k-th nearest other real
sample; the union of the balls estimates the real manifold, and likewise for fakes.

- precision: fraction of fakes inside at least one real ball (fidelity);
- recall: fraction of reals inside at least one fake ball (diversity);
- density: real balls containing each fake, divided by k, averaged over fakes; it can exceed 1
  and, unlike precision, is not inflated by real outliers;
- coverage: fraction of reals whose own ball contains at least one fake.

The definitions, including the strict "<" and the radius counting the sample itself as its
own zeroth neighbour, match the `prdc` package of Naeem et al. Distances are computed in row
blocks, so memory stays at chunk_size × n rather than n × n.
"""

from __future__ import annotations

import torch

from trilemma.metrics._inputs import ArrayLike, as_matrix


def _kth_neighbour_radii(points: torch.Tensor, k: int, chunk_size: int) -> torch.Tensor:
    """Distance from each point to its k-th nearest neighbour in the same set, itself excluded.

    The point's zero distance to itself is the smallest of each row, so the k-th neighbour is
    the (k+1)-th smallest entry.
    """
    radii = [
        torch.cdist(block, points).topk(k + 1, dim=1, largest=False).values[:, k]
        for block in points.split(chunk_size)
    ]
    return torch.cat(radii)


def prdc(
    real: ArrayLike,
    fake: ArrayLike,
    k: int = 5,
    chunk_size: int = 1024,
    dtype: torch.dtype = torch.float64,
) -> dict[str, float]:
    """Precision, recall, density and coverage of `fake` features against `real` ones.

    `k` is the neighbourhood size (5 in both papers). `chunk_size` rows of the distance
    matrices are held at a time. float64 (the default) reproduces `prdc.compute_prdc` on
    float64 input exactly; float32 is about twice as fast and can differ on samples that sit
    within rounding of a ball's edge.
    """
    x = as_matrix(real, "real", dtype)
    y = as_matrix(fake, "fake", dtype)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: real {x.shape[1]}, fake {y.shape[1]}")
    if k < 1 or min(x.shape[0], y.shape[0]) <= k:
        raise ValueError(f"prdc needs k >= 1 and more than k samples in each set (k = {k})")
    # Distances are translation-invariant; centring keeps the |x|² + |y|² − 2x·y expansion that
    # torch.cdist uses from cancelling digits when the features sit far from the origin.
    centre = x.mean(dim=0)
    x, y = x - centre, y - centre
    real_radii = _kth_neighbour_radii(x, k, chunk_size)
    fake_radii = _kth_neighbour_radii(y, k, chunk_size)

    # One pass over real-row blocks of the real-fake distance matrix gives all four numbers.
    balls_per_fake = torch.zeros(y.shape[0], dtype=torch.int64)
    real_in_fake_ball = []
    real_ball_has_fake = []
    for block, radii in zip(x.split(chunk_size), real_radii.split(chunk_size), strict=True):
        distances = torch.cdist(block, y)
        balls_per_fake += (distances < radii[:, None]).sum(dim=0)
        real_in_fake_ball.append((distances < fake_radii[None, :]).any(dim=1))
        real_ball_has_fake.append(distances.min(dim=1).values < radii)

    return {
        "precision": float((balls_per_fake > 0).double().mean()),
        "recall": float(torch.cat(real_in_fake_ball).double().mean()),
        "density": float(balls_per_fake.double().mean() / k),
        "coverage": float(torch.cat(real_ball_has_fake).double().mean()),
    }
