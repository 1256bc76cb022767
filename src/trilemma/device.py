"""Choosing the device, and what a run records about it."""

from __future__ import annotations

import platform

import torch

from trilemma.errors import UnsupportedRequest


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UnsupportedRequest(f"--device {name}: CUDA is not available on this machine (use cpu or auto)")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise UnsupportedRequest(f"--device {name}: unknown device (use auto, cpu or cuda)")


def describe_device(device: torch.device) -> dict:
    if device.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(device), "torch": torch.__version__}
    return {
        "type": "cpu",
        "name": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def sampling_generator(seed: int, device: torch.device) -> torch.Generator:
    """Seeded noise for sampling, on the CPU so the same seed gives the same noise on any device."""
    return torch.Generator("cpu").manual_seed(seed)
