"""Generated samples as training data: does adding a conditional model's labelled samples to a
small real training set raise a classifier's held-out accuracy?

The protocol: the domain classifier (LeNet, `trilemma.nets.classifier`) is trained on
`n_real` labelled real images, a class-stratified seeded subset of the training split, with
and without `n_generated` labelled samples of each conditional run, for the same number of
optimisation steps, and tested on the whole held-out split. In the mixed set the real images
are repeated so that they make up `real_share` of it (the generated ones would otherwise
drown them). Repeated over seeds (subset, samples and classifier all change with the seed);
mean and standard deviation are reported. Ravuri & Vinyals (2019) use the same classifier
with generated data only (CAS, `trilemma.metrics.cas`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from trilemma.capabilities.conditional import balanced_labels, require_conditional
from trilemma.data import Dataset
from trilemma.errors import UnsupportedRequest
from trilemma.nets.classifier import accuracy, train_classifier


def stratified_subset(labels: torch.Tensor | np.ndarray, n: int, num_classes: int, seed: int) -> np.ndarray:
    """Sorted indices of n items, as equal a share of each class as the data allow, seeded."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    pools = [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]
    pools = [p for p in pools if len(p)]
    if n > len(labels):
        raise UnsupportedRequest(f"asked for {n} real images but the training split holds {len(labels)}")
    chosen: list[int] = []
    depth = 0
    while len(chosen) < n:  # take one per class in turn, so every class gets n/C (± 1)
        for pool in rng.permutation(len(pools)):
            if depth < len(pools[pool]) and len(chosen) < n:
                chosen.append(int(pools[pool][depth]))
        depth += 1
    return np.sort(np.array(chosen, dtype=np.int64))


def _mix(real_x: torch.Tensor, real_y: torch.Tensor, fake_x: torch.Tensor, fake_y: torch.Tensor,
         real_share: float) -> tuple[torch.Tensor, torch.Tensor]:
    repeats = max(1, round(real_share / (1 - real_share) * len(fake_x) / len(real_x))) if real_share < 1 else 1
    x = torch.cat([real_x.repeat(repeats, 1, 1, 1), fake_x])
    y = torch.cat([real_y.repeat(repeats), fake_y])
    return x, y


def augmentation_table(
    runs: Sequence[Any],
    dataset: Dataset,
    *,
    n_real: int = 100,
    n_generated: int = 1000,
    seeds: Sequence[int] = (0, 1, 2),
    steps: int = 600,
    real_share: float = 0.5,
    batch_size: int = 500,
) -> dict[str, Any]:
    """Held-out accuracy of the classifier trained on `n_real` real images alone, and with each
    loaded conditional run's samples (`trilemma.sampling.load_run`), at its default sampling
    settings.

    Returns ``{"rows", "real_only", "provenance"}``: ``rows`` holds one dict per training set,
    the real-only one first: ``source`` ("real only" or the run's family), ``run``,
    ``accuracies`` (one per seed), ``mean``, ``std``, ``gain`` (mean minus real-only mean).
    """
    from trilemma.sampling import generate

    if dataset.y_train is None or dataset.y_heldout is None or dataset.kind != "image":
        raise UnsupportedRequest(f"augment: {dataset.name} needs labelled images")
    for run in runs:
        require_conditional(run, "augment")
        made = tuple(run.config["family_config"]["data"]["sample_shape"])
        if made != tuple(dataset.sample_shape):
            raise UnsupportedRequest(f"augment: {run.run_dir} makes {made} samples, {dataset.name} holds "
                                     f"{tuple(dataset.sample_shape)}")
    if not 0 < real_share <= 1:
        raise UnsupportedRequest(f"real_share must lie in (0, 1], not {real_share}")
    num_classes = dataset.num_classes
    device = runs[0].family.device if runs else "cpu"

    def fit(x: torch.Tensor, y: torch.Tensor, seed: int) -> float:
        model = train_classifier(x, y, num_classes, steps=steps, seed=seed, device=device)
        return accuracy(model, dataset.x_heldout, dataset.y_heldout)

    sources: list[tuple[str, str | None, list[float]]] = [("real only", None, [])]
    sources += [(run.family.name, str(run.run_dir), []) for run in runs]
    for seed in seeds:
        index = torch.from_numpy(stratified_subset(dataset.y_train, n_real, num_classes, seed))
        real_x, real_y = dataset.x_train[index], dataset.y_train[index]
        sources[0][2].append(fit(real_x, real_y, seed))
        for run, (_, _, accuracies) in zip(runs, sources[1:], strict=True):
            classes = run.family.config.data.num_classes
            labels = balanced_labels(classes, max(1, n_generated // classes))
            samples = generate(run.family, run.normalizer, len(labels), seed=seed, labels=labels,
                               batch_size=batch_size)
            fake_x = torch.from_numpy(np.ascontiguousarray(samples.x.transpose(0, 3, 1, 2)))
            x, y = _mix(real_x, real_y, fake_x, torch.from_numpy(labels), real_share)
            accuracies.append(fit(x, y, seed))
    base = float(np.mean(sources[0][2]))
    rows = [{"source": name, "run": run_dir, "accuracies": accuracies,
             "mean": float(np.mean(accuracies)), "std": float(np.std(accuracies)),
             "gain": float(np.mean(accuracies)) - base}
            for name, run_dir, accuracies in sources]
    return {
        "rows": rows,
        "real_only": base,
        "provenance": {"n_real": n_real, "n_generated": n_generated, "seeds": list(seeds), "steps": steps,
                       "real_share": real_share, "n_heldout": len(dataset.x_heldout),
                       "data": dataset.info.get("spec", dataset.name), "classifier": "lenet (trained per row)"},
    }


def format_augmentation(result: dict[str, Any]) -> str:
    p = result["provenance"]
    lines = [(f"held-out accuracy of the classifier trained on {p['n_real']} real images "
             f"(+ {p['n_generated']} generated), {len(p['seeds'])} seed(s), {p['n_heldout']} held-out images"),
             f"  {'training set':<28} {'accuracy':>9} {'± std':>7} {'gain':>7}"]
    for row in result["rows"]:
        name = row["source"] if row["run"] is None else f"real + {row['source']}"
        lines.append(f"  {name:<28} {row['mean']:>9.4f} {row['std']:>7.4f} {row['gain']:>+7.4f}")
    return "\n".join(lines)
