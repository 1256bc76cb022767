"""The capabilities on a table's rows, beyond imputation (`trilemma.tables.imputation`):

- **anomaly**: every row scored by the family's own statistic (`trilemma.capabilities.anomaly`:
  the VAE's typicality test on its likelihood statistics, diffusion's on its denoising error,
  the GAN's critic). Measured as the AUROC of telling real held-out rows from rows whose cells
  were each drawn from a different real row (the independent-marginals baseline): every cell is
  a plausible value, only the relations between them are wrong, which is what a model of the
  whole row can see and a per-column check cannot.
- **augmentation**: a small real training set (`N_REAL` rows) with and without `N_GENERATED`
  generated rows, the classifier of the train-on-synthetic scores (gradient-boosted trees) trained
  on each and tested on the held-out rows; the gain in accuracy. The generated rows carry their
  own value of the target, so an unconditional model serves too.
- **conditional generation on a column's value**: a model conditioned on `--target` asked for
  each value in turn; the share of its rows whose target cell holds the value asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trilemma.tables.baselines import independent_marginals
from trilemma.tables.utility import predict_target

N_REAL = 100
N_GENERATED = 1000
ANOMALY_ROWS = 500


def anomaly_auroc(family: Any, dataset: Any, n: int = ANOMALY_ROWS, seed: int = 0) -> dict[str, Any]:
    """AUROC of the family's anomaly score for held-out rows (normal) against shuffled-cell rows."""
    from trilemma.capabilities.anomaly import anomaly_scores, auroc, draw_reference, score_method

    rng = np.random.default_rng(seed)
    heldout = dataset.x_heldout.numpy()
    normal = heldout[rng.choice(len(heldout), min(n, len(heldout)), replace=False)]
    shuffled = independent_marginals(dataset.codec, heldout, len(normal), rng)
    x = dataset.normalizer.to_model(torch.from_numpy(np.concatenate([normal, shuffled])))
    scores = anomaly_scores(family, x, reference=draw_reference(dataset, seed=seed), seed=seed)["score"]
    truth = np.concatenate([np.zeros(len(normal)), np.ones(len(shuffled))])
    return {"auroc": auroc(scores, truth), "method": score_method(family), "rows": len(x)}


def augmentation_gain(families: dict[str, Any], dataset: Any, target: str, *, n_real: int = N_REAL,
                      n_generated: int = N_GENERATED, seeds: tuple[int, ...] = (0, 1, 2)) -> dict[str, Any]:
    """Held-out accuracy of the target's classifier on `n_real` real rows alone and with each
    family's generated rows added; mean over `seeds` (the real subset, the samples and the
    classifier change with the seed)."""
    from trilemma.sampling import generate

    codec = dataset.reference_codec
    block = codec.block(target)
    features = codec.without(target)
    test_x = features.encode(dataset.frame_heldout)
    test_y = codec.category_codes(block, dataset.frame_heldout[target])
    real_only, mixed = [], {name: [] for name in families}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        real = dataset.frame_train.iloc[np.sort(rng.choice(len(dataset.frame_train), n_real, replace=False))]
        real_only.append(_accuracy(features, codec, block, [real], target, test_x, test_y, seed))
        for name, family in families.items():
            made = dataset.decode(generate(family, dataset.normalizer, n_generated, seed=seed).x)
            mixed[name].append(_accuracy(features, codec, block, [real, made], target, test_x, test_y, seed))
    baseline = float(np.mean(real_only))
    rows = {name: {"accuracy": float(np.mean(values)), "gain": float(np.mean(values)) - baseline}
            for name, values in mixed.items()}
    return {"n_real": n_real, "n_generated": n_generated, "seeds": list(seeds), "target": target,
            "real_only_accuracy": baseline, "families": rows}


def _accuracy(features, codec, block, frames, target, test_x, test_y, seed) -> float:
    x = np.concatenate([features.encode(f) for f in frames])
    y = np.concatenate([codec.category_codes(block, f[target]) for f in frames])
    return float((predict_target(x, y, test_x, seed) == test_y).mean())


def conditional_agreement(family: Any, dataset: Any, per_value: int = 200, seed: int = 0) -> dict[str, Any]:
    """For a model conditioned on the target: per value asked for, the share of its rows whose
    target cell holds that value, and the mean over values."""
    from trilemma.sampling import generate

    block = dataset.codec.block(dataset.target)
    labels = torch.arange(dataset.num_classes).repeat_interleave(per_value)
    rows = dataset.decode(generate(family, dataset.normalizer, len(labels), seed=seed, labels=labels.numpy()).x)
    made = dataset.codec.category_codes(block, rows[dataset.target])
    per = {name: float((made[labels.numpy() == c] == c).mean()) for c, name in enumerate(dataset.class_names)}
    return {"agreement": float(np.mean(list(per.values()))), "per_value": per, "rows": len(labels)}
