"""How well a conditional model obeys its labels: ask for each class, let a classifier read
the samples, and train a classifier on them (the Classification Accuracy Score).

- ``agreement``: the fraction of samples the domain classifier assigns to the class they were
  asked for (overall and per class), the figure behind "conditional generation works";
- ``cas`` (Ravuri & Vinyals 2019): held-out real accuracy of a classifier trained only on the
  generated, labelled samples, beside ``cas_real_baseline``, the same classifier trained on as
  many real training images.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from trilemma.data import Dataset
from trilemma.errors import UnsupportedRequest
from trilemma.metrics.cas import classification_accuracy_score
from trilemma.nets.classifier import predict, train_classifier


def require_conditional(run: Any, task: str) -> None:
    """One-line refusal for a model without classes."""
    if not run.family.conditional:
        raise UnsupportedRequest(f"{task}: {run.run_dir} is an unconditional {run.family.name} run; "
                                 "it needs a conditional model (train with --conditional on labelled data)")


def balanced_labels(num_classes: int, per_class: int) -> np.ndarray:
    """0, 1, …, C−1 repeated: `per_class` of each class, interleaved so that any prefix is balanced."""
    return np.tile(np.arange(num_classes, dtype=np.int64), per_class)


def domain_classifier(dataset: Dataset, device: Any = "cpu", seed: int = 0) -> tuple[Any, str]:
    """The shipped domain classifier of a built-in set, or one trained on the data's training
    split (30 epochs) for the user's own labelled data; with its name."""
    from trilemma.evaluation import builtin_name
    from trilemma.metrics.features import DomainClassifierExtractor, available_domain_classifiers

    name = builtin_name(dataset)
    if name in available_domain_classifiers():
        extractor = DomainClassifierExtractor(name, device=device)
        if extractor.image_shape == tuple(dataset.sample_shape):
            return extractor.model, extractor.name
    if dataset.y_train is None:
        raise UnsupportedRequest(f"{dataset.name}: no labels to train a classifier on")
    model = train_classifier(dataset.x_train, dataset.y_train, dataset.num_classes, seed=seed, device=device)
    return model, f"lenet trained on {dataset.name} (train split, seed {seed})"


def conditional_accuracy(
    run: Any,
    dataset: Dataset,
    *,
    per_class: int = 100,
    seed: int = 0,
    cas: bool = True,
    batch_size: int = 500,
    **options: Any,
) -> dict[str, Any]:
    """Agreement of a conditional run's samples with the requested class, and CAS.

    Draws `per_class` samples of every class (same seed for any options, so e.g. two guidance
    weights see the same noise). `options` go to sampling (``guidance``, ``truncation``, …).
    Returns ``agreement`` (float), ``per_class_agreement`` (list of C floats),
    ``confusion`` (C×C list of counts, rows = requested class), ``cas`` and
    ``cas_real_baseline`` (floats, None when `cas` is False), ``classifier``, ``n``, ``options``.
    """
    from trilemma.sampling import generate

    require_conditional(run, "conditional accuracy")
    if dataset.kind != "image":
        raise UnsupportedRequest(f"{dataset.name} holds points; class agreement needs images and a classifier")
    num_classes = run.family.config.data.num_classes
    labels = balanced_labels(num_classes, per_class)
    samples = generate(run.family, run.normalizer, len(labels), seed=seed, batch_size=batch_size,
                       labels=labels, **options)
    images = torch.from_numpy(np.ascontiguousarray(samples.x.transpose(0, 3, 1, 2)))
    classifier, classifier_name = domain_classifier(dataset, run.family.device, seed)
    predicted = predict(classifier, images).numpy()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    result: dict[str, Any] = {
        "agreement": float((predicted == labels).mean()),
        "per_class_agreement": (np.diag(confusion) / confusion.sum(1)).tolist(),
        "confusion": confusion.tolist(),
        "cas": None,
        "cas_real_baseline": None,
        "classifier": classifier_name,
        "n": len(labels),
        "seed": seed,
        "samples_per_s": samples.samples_per_second,
        "nfe": samples.nfe,
        "options": {k: v for k, v in options.items() if v is not None},
    }
    if cas and dataset.y_heldout is not None:
        device = run.family.device
        result["cas"] = classification_accuracy_score(images, labels, dataset.x_heldout, dataset.y_heldout,
                                                      dataset.num_classes, seed=seed, device=device)
        real_n = min(len(labels), len(dataset.x_train))
        index = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(len(dataset.x_train), real_n,
                                                                            replace=False)))
        result["cas_real_baseline"] = classification_accuracy_score(
            dataset.x_train[index], dataset.y_train[index], dataset.x_heldout, dataset.y_heldout,
            dataset.num_classes, seed=seed, device=device)
    return result
