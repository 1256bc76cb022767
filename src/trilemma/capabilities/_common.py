"""Small helpers the capability modules share."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch

from trilemma.errors import UnsupportedRequest


def family_name(family: object) -> str:
    return str(getattr(family, "name", type(family).__name__))


def check_labels(family: Any, labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """The labels on the family's device, refused (one line) for an unconditional model or a
    class the model does not know. None stays None: conditional denoisers then use their
    "no label" token; conditional encoders and generators run without a label embedding."""
    if labels is None:
        return None
    labels = torch.as_tensor(labels, dtype=torch.long)
    if labels.shape != (n,):
        raise UnsupportedRequest(f"expected {n} labels, one per image, got shape {tuple(labels.shape)}")
    data = getattr(getattr(family, "config", None), "data", None)
    num_classes = getattr(data, "num_classes", 0)
    if not num_classes:
        raise UnsupportedRequest(f"this {family_name(family)} model is unconditional; it takes no class")
    if labels.min() < 0 or labels.max() >= num_classes:
        bad = int(labels.max()) if labels.max() >= num_classes else int(labels.min())
        raise UnsupportedRequest(f"class {bad} is out of range: the model knows {num_classes} classes "
                                 f"(0-{num_classes - 1})")
    return labels.to(family_device(family))


def family_device(family: Any) -> torch.device:
    try:
        return next(family.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def call_with_options(function: Callable, task: str, *args: Any, **options: Any) -> Any:
    """Call a method with the user's options, refusing (one line) any it does not take."""
    accepted = set(inspect.signature(function).parameters)
    unknown = sorted(k for k in options if k not in accepted)
    if unknown:
        known = sorted(k for k, p in inspect.signature(function).parameters.items()
                       if p.kind == p.KEYWORD_ONLY)
        raise UnsupportedRequest(f"{task} by {function.__name__} has no option(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(known) or 'none'})")
    return function(*args, **{k: v for k, v in options.items() if v is not None})


def batches(n: int, size: int):
    for first in range(0, n, size):
        yield slice(first, min(n, first + size))
