"""What each family is known for, as functions over a family or a loaded run, measured.

One small module per task; each asks the family which capability protocols it implements
(`trilemma.families.capabilities`) and picks its method from the answer, never from the
family's name. A family lacking what a task needs gets `UnsupportedRequest` with one sentence.

- `masks`: which pixels an inpainting request hides.
- `inversion`: deterministic DDIM sampling and inversion for any `Denoiser`.
- `inpainting`: RePaint (diffusion), clamped encode/decode (VAE), latent optimisation (GAN).
- `interpolation`: spherical interpolation paths and their smoothness.
- `editing`: image-to-image (SDEdit) and denoising; VAE reconstruction as the counterpart.
- `superresolution`: ×2 upscaling with an unconditional denoiser (ILVR).
- `anomaly`: per-image anomaly scores and AUROC.
- `truncation`: the sweep of a family's fidelity/diversity knob (truncation, temperature, guidance).
- `conditional`: class agreement and CAS of a conditional run.
- `augmentation`: generated labelled data as augmentation for a small real set.
- `files`: reading the user's image and label files against a run.
"""

from __future__ import annotations

from trilemma.capabilities.anomaly import anomaly_scores, auroc, score_method
from trilemma.capabilities.augmentation import augmentation_table, stratified_subset
from trilemma.capabilities.conditional import conditional_accuracy
from trilemma.capabilities.truncation import fidelity_sweep, knob_of
from trilemma.errors import UnsupportedRequest

TASKS = ("interpolate", "inpaint", "img2img", "denoise", "upscale", "anomaly score", "fidelity knob")

__all__ = [
    "TASKS",
    "anomaly_scores",
    "augmentation_table",
    "auroc",
    "conditional_accuracy",
    "fidelity_sweep",
    "knob_of",
    "methods",
    "score_method",
    "stratified_subset",
]


def methods(family: object) -> dict[str, str | None]:
    """For each task, the method this family would use, or None where it cannot do it, read from
    the capability protocols it implements (what a report tabulates)."""
    from trilemma.capabilities.editing import editing_method
    from trilemma.capabilities.inpainting import inpainting_method
    from trilemma.families.capabilities import Denoiser, Encoder, LatentGenerator

    def attempt(function, *args) -> str | None:
        try:
            return function(*args)
        except UnsupportedRequest:
            return None

    latent = ("DDIM inversion + slerp" if isinstance(family, Denoiser) else "posterior mean + slerp"
              if isinstance(family, Encoder) else "latent slerp" if isinstance(family, LatentGenerator) else None)
    knob = attempt(knob_of, family)
    return {
        "interpolate": latent,
        "inpaint": attempt(inpainting_method, family),
        "img2img": attempt(editing_method, family, "image-to-image"),
        "denoise": attempt(editing_method, family, "denoising"),
        "upscale": "ilvr" if isinstance(family, Denoiser) else None,
        "anomaly score": attempt(score_method, family),
        "fidelity knob": knob.name if knob is not None else None,
    }
