"""The hybrids' promises, judged like the classic families' folklore (`claims.py`): each rule
takes a family's name and every family's figures and returns a verdict with its evidence.

Each promise is relative to a classic family, pixel diffusion or the GAN; without that family in
the comparison the verdict is "not measured". Final FDs are compared, which all use the same
number of samples, the same features and the same reference.
"""

from __future__ import annotations

from typing import Any

Verdict = tuple[str, str]

FLOW_QUALITY = 1.15  # "diffusion's quality": an FD at most 15% above diffusion's
FEWER_STEPS = 0.5  # "in fewer steps": at most half diffusion's network evaluations
RECALL_GAP = 0.1  # "diffusion's diversity": recall within 0.1 of diffusion's
# "Nearly as fast as a GAN": a few network evaluations where diffusion needs tens, which this
# project measures as at least 10x diffusion's samples per second. The GAN's own speed is shown
# beside it; its generator is far smaller than a denoising U-Net, so no rule is set on it.
DIFFUSION_SPEEDUP = 10.0
LATENT_SPEEDUP = 3.0  # "faster than pixel diffusion": at least 3x its samples per second


def _missing(family: str, families: dict[str, Any]) -> Verdict | None:
    if family not in families:
        return "not measured", f"The claim is relative to {family}, which this comparison did not train."
    return None


def _fd(entry: dict[str, Any]) -> str:
    return f"{entry.get('fid_name') or 'FD'} {entry['fid']:.1f}"


def few_steps(name: str, families: dict[str, Any]) -> Verdict:
    """Flow matching against diffusion: its FD at its default sampler vs diffusion's at its own."""
    missing = _missing("diffusion", families)
    if missing:
        return missing
    mine, diffusion = families[name], families["diffusion"]
    quality = mine["fid"] / diffusion["fid"] if diffusion["fid"] else float("inf")
    steps = mine["nfe"] / diffusion["nfe"] if diffusion["nfe"] else float("inf")
    text = (f"{name}: {_fd(mine)} at {mine['nfe']:.0f} network evaluations per sample; diffusion: "
            f"{_fd(diffusion)} at {diffusion['nfe']:.0f} ({quality:.2f}× the FD at {steps:.2f}× the "
            f"evaluations). Rule: supported when the FD is at most {FLOW_QUALITY:.2f}× diffusion's at no "
            f"more than {FEWER_STEPS:.1f}× its evaluations; contradicted when it needs as many evaluations "
            f"or its FD is over 1.5× diffusion's.")
    if quality <= FLOW_QUALITY and steps <= FEWER_STEPS:
        return "supported", text
    if steps >= 1 or quality > 1.5:
        return "contradicted", text
    return "mixed", text


def fast_and_diverse(name: str, families: dict[str, Any]) -> Verdict:
    """The denoising-diffusion GAN: speed against the GAN and diffusion, recall against diffusion."""
    missing = _missing("diffusion", families)
    if missing:
        return missing
    mine, diffusion, gan = families[name], families["diffusion"], families.get("gan")
    speedup = mine["samples_per_s"] / diffusion["samples_per_s"]
    parts = [f"{mine['samples_per_s']:.0f} samples/s ({speedup:.1f}× diffusion's {diffusion['samples_per_s']:.1f})"]
    fast = speedup >= DIFFUSION_SPEEDUP
    if gan is not None:
        share = mine["samples_per_s"] / gan["samples_per_s"]
        parts.append(f"{share:.2f}× the GAN's {gan['samples_per_s']:.0f}, at {mine['nfe']:.0f} network "
                     f"evaluations against its {gan['nfe']:.0f}")
    recall, reference = mine.get("recall"), diffusion.get("recall")
    diverse = None
    if recall is not None and reference is not None:
        parts.append(f"recall {recall:.2f} against diffusion's {reference:.2f}")
        diverse = recall >= reference - RECALL_GAP
    text = ("; ".join(parts) + f". Rule: fast when at least {DIFFUSION_SPEEDUP:.0f}× diffusion's samples/s; "
            f"diverse when recall is within {RECALL_GAP} of diffusion's.")
    if diverse is None:
        return ("mixed" if fast else "contradicted"), text + " Recall was not measured."
    if fast and diverse:
        return "supported", text
    return ("contradicted" if not fast and not diverse else "mixed"), text


def latent_faster(name: str, families: dict[str, Any]) -> Verdict:
    """Latent diffusion against pixel diffusion: sampling speed, and the fidelity paid for it."""
    missing = _missing("diffusion", families)
    if missing:
        return missing
    mine, diffusion = families[name], families["diffusion"]
    speedup = mine["samples_per_s"] / diffusion["samples_per_s"]
    floor = mine.get("reconstruction_fid")
    text = (f"{mine['samples_per_s']:.0f} samples/s, {speedup:.1f}× pixel diffusion's "
            f"{diffusion['samples_per_s']:.1f}; {_fd(mine)} against diffusion's {_fd(diffusion)}"
            + (f"; its autoencoder's reconstructions score {floor:.1f}, the floor" if floor is not None else "")
            + f". Rule: supported when at least {LATENT_SPEEDUP:.0f}× faster with a higher FD; "
            "contradicted when not faster at all; mixed otherwise (less of a speed-up, or no cost in FD).")
    if speedup < 1:
        return "contradicted", text
    return ("supported" if speedup >= LATENT_SPEEDUP and mine["fid"] > diffusion["fid"] else "mixed"), text


RULES = {"few_steps": few_steps, "fast_and_diverse": fast_and_diverse, "latent_faster": latent_faster}
