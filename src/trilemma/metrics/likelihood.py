"""Log-likelihood of data under a VAE: the importance-weighted bound (IWAE).

Burda, Grosse & Salakhutdinov 2016, "Importance weighted autoencoders", eq. 8: with
z₁ … z_k drawn independently from the encoder q(z|x),

    L_k(x) = E[ log (1/k) Σᵢ p(x|zᵢ) p(zᵢ) / q(zᵢ|x) ]  ≤  log p(x),

L₁ is the ELBO, L_k never decreases with k (their theorem 1) and L_k → log p(x) as k → ∞
when p(x, z)/q(z|x) is bounded. Any model with ``encode(x, labels) -> (mean, log_variance)``
of a diagonal Gaussian q(z|x), ``decoder(z, labels)`` and ``reconstruction_nll(x, decoded)``
= −log p(x|z) per sample, and a standard normal prior — the `Likelihood` protocol of
`trilemma.families.capabilities`, which `trilemma.families.vae.VAE` implements — can be
scored. `importance_log_weights` is the one place the weights are computed; the anomaly score
(`trilemma.capabilities.anomaly`) uses it too.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from trilemma.data import Normalizer

_LOG_2PI = math.log(2 * math.pi)
_GREY_SPACE = "8-bit grey levels (bits per dimension of [0, 256) intensities)"


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def _is_image_model(vae: Any) -> bool:
    config = getattr(vae, "config", None)
    data = getattr(config, "data", None)
    return bool(getattr(data, "is_image", False))


def importance_log_weights(
    model: Any, x: torch.Tensor, labels: torch.Tensor | None, mean: torch.Tensor,
    log_variance: torch.Tensor, eps: torch.Tensor, grey_levels: bool = False,
) -> torch.Tensor:
    """The log importance weights of eq. 8, log wᵢ = log p(x|zᵢ) + log p(zᵢ) − log q(zᵢ|x),
    for zᵢ = μ + σ εᵢ from the posterior (`mean`, `log_variance`) of each row of `x`: (n, k)
    float64. `eps` is (n, k, latent), a draw per row, or (k, latent), one draw shared by every
    row (the anomaly score's, so that a score does not depend on the batch it is in).
    `grey_levels`: p(x|z) of an image model as a probability of the 256 grey levels."""
    eps = eps.to(device=mean.device, dtype=mean.dtype).expand(len(x), *eps.shape[-2:])
    count = eps.shape[1]
    z = mean[:, None] + (0.5 * log_variance).exp()[:, None] * eps
    x_rep = x.repeat_interleave(count, dim=0)
    y_rep = None if labels is None else labels.repeat_interleave(count, dim=0)
    decoded = model.decoder(z.reshape(len(x) * count, -1), y_rep)
    log_px_z = -(model.reconstruction_nll(x_rep, decoded, grey_levels=True) if grey_levels
                 else model.reconstruction_nll(x_rep, decoded))
    log_pz = -0.5 * (z.double().square() + _LOG_2PI).sum(dim=2)
    # z − mean = std · eps, so the Gaussian exponent of q is eps² exactly.
    log_qz = -0.5 * (eps.double().square() + log_variance.double()[:, None] + _LOG_2PI).sum(dim=2)
    return log_px_z.view(len(x), count).double() + log_pz - log_qz


@torch.no_grad()
def _log_weights(
    vae: Any,
    x_model: torch.Tensor,
    k: int,
    batch_size: int,
    labels: torch.Tensor | None,
    seed: int,
    grey_levels: bool = False,
) -> torch.Tensor:
    """`importance_log_weights` of k draws per sample, each sample its own: (n, k) float64.

    Noise is drawn on the CPU from `seed` (as the sampling path does), so a bound is the same
    number on any device up to float rounding.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    device = _device_of(vae)
    generator = torch.Generator("cpu").manual_seed(seed)
    was_training = vae.training
    vae.eval()
    rows: list[torch.Tensor] = []
    # batch_size counts decoder evaluations per pass: x rows times importance samples.
    rows_per_pass = max(1, batch_size // k)
    samples_per_pass = max(1, min(k, batch_size))
    try:
        for start in range(0, len(x_model), rows_per_pass):
            x = x_model[start:start + rows_per_pass].to(device)
            y = None if labels is None else labels[start:start + rows_per_pass].to(device)
            mean, log_variance = vae.encode(x, y)
            chunks = []
            for first in range(0, k, samples_per_pass):
                count = min(samples_per_pass, k - first)
                eps = torch.randn((len(x), count, mean.shape[1]), generator=generator)
                chunks.append(importance_log_weights(vae, x, y, mean, log_variance, eps, grey_levels).cpu())
            rows.append(torch.cat(chunks, dim=1))
    finally:
        vae.train(was_training)
    return torch.cat(rows)


def iwae_bound(
    vae: Any,
    x_model: torch.Tensor,
    k: int = 100,
    batch_size: int = 5000,
    labels: torch.Tensor | None = None,
    seed: int = 0,
) -> torch.Tensor:
    """Per-sample importance-weighted lower bound L_k on log p(x), in nats: (n,) float64.

    `x_model` is data in the model's space (``Normalizer.to_model``: images in [−1, 1]);
    `labels` condition a conditional VAE, which bounds log p(x|y) instead. `batch_size` is
    the number of decoder evaluations (samples × importance draws) per forward pass.
    L_k = logsumexp(log wᵢ) − log k, computed in float64 so that k in the thousands loses
    nothing to rounding. k = 1 is a one-draw estimate of the ELBO.
    """
    log_w = _log_weights(vae, x_model, k, batch_size, labels, seed)
    return torch.logsumexp(log_w, dim=1) - math.log(k)


def negative_log_likelihood(
    vae: Any,
    x_model: torch.Tensor,
    k: int = 100,
    *,
    labels: torch.Tensor | None = None,
    batch_size: int = 5000,
    seed: int = 0,
    normalizer: Normalizer | None = None,
    grey_levels: bool = False,
) -> dict[str, Any]:
    """The IWAE estimate of −log p(x) averaged over `x_model`, in nats and in bits per dimension.

    Returns ``nll_nats`` (mean of −L_k; an upper bound on the true NLL in expectation),
    ``nll_nats_standard_error``, ``bits_per_dim`` = nll_nats / (D ln 2) with D the number of
    dimensions of one sample, ``negative_elbo_nats`` (−ELBO averaged over the same k draws;
    the gap to ``nll_nats`` is what importance weighting buys), ``k``, ``n``, ``dims``,
    ``likelihood`` ("bernoulli", "grey levels" or "gaussian"), ``binary_data`` and ``space``.

    What the Bernoulli number means. Image VAEs here put a Bernoulli likelihood on each
    pixel's intensity in [0, 1]; on grey levels p(x|z) = Πⱼ μⱼ^xⱼ (1 − μⱼ)^(1 − xⱼ) is
    neither a probability of the 256 discrete levels nor a density on [0, 1] (it does not
    normalise over either), so this is not a likelihood of the 8-bit data, and its bits/dim
    cannot be set beside discrete or dequantised bits/dim (PixelCNN, diffusion, NVAE).
    It is the quantity Bernoulli-VAE papers and libraries report, and is comparable with
    their figures (pythae's VAE ≈ 89.8 nats, IWAE ≈ 86.8 on MNIST) only when the data are
    binarised (``binary_data`` true). On grey levels it carries a floor of Σⱼ H(xⱼ), the
    binary entropy of each intermediate intensity, that no decoder can remove, so it comes
    out higher than on the binarised images.

    With `grey_levels` the same decoder is read as a probability of the 256 grey levels,
    P(k|z) ∝ μ^(k/255) (1 − μ)^(1 − k/255), normalised over k (`trilemma.families.vae.
    grey_level_normaliser`). That is a true likelihood of the 8-bit images, so its bits/dim
    (of [0, 256) intensities; the uniformly dequantised density has the same value) can be set
    beside a diffusion model's bound on dequantised data and beside published bits/dim.

    Points (Gaussian likelihood) are a true density. It is computed in the model's
    standardised space; give the run's `normalizer` to report it in the data's own units
    (log p(x) = log p(x_model) − D log scale, the Jacobian of the standardisation).
    """
    is_image = _is_image_model(vae)
    grey_levels = grey_levels and is_image
    log_w = _log_weights(vae, x_model, k, batch_size, labels, seed, grey_levels)
    bound = torch.logsumexp(log_w, dim=1) - math.log(k)
    elbo = log_w.mean(dim=1)
    dims = int(math.prod(x_model.shape[1:]))
    space = "model"
    if normalizer is not None and normalizer.kind == "points" and not is_image:
        shift = dims * math.log(normalizer.scale)
        bound, elbo, space = bound - shift, elbo - shift, "data"
    nll = -bound
    n = len(nll)
    standard_error = float(nll.std(correction=1) / math.sqrt(n)) if n > 1 else float("nan")
    extremes = torch.tensor([-1.0, 1.0], device=x_model.device)
    binary = bool(is_image and torch.isin(x_model, extremes).all())
    return {
        "nll_nats": float(nll.mean()),
        "nll_nats_standard_error": standard_error,
        "bits_per_dim": float(nll.mean()) / (dims * math.log(2)),
        "negative_elbo_nats": float(-elbo.mean()),
        "k": int(k),
        "n": int(n),
        "dims": dims,
        "likelihood": ("grey levels" if grey_levels else "bernoulli") if is_image else "gaussian",
        "binary_data": binary,
        "space": space if not is_image else (_GREY_SPACE if grey_levels else "pixel intensities in [0, 1]"),
        "seed": int(seed),
    }
