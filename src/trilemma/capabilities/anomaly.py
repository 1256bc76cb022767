"""Anomaly scores per image from any family, higher meaning more anomalous, and their AUROC.

The method follows what the model can do (its capability protocols), never its name:

- `Encoder` (VAE): −log p(x) by the importance-weighted bound (Burda et al. 2016, eq. 8),
  in nats, with bits/dim and the reconstruction error of the posterior mean beside it;
- `Denoiser` (diffusion): the denoising error, ‖ε − ε̂(x_t, t)‖² averaged over a fixed set of
  timesteps, the Monte-Carlo form of Ho et al.'s L_simple, a reweighted variational bound;
- `Critic` (GAN): the negative discriminator logit on the un-augmented image.

Every score is deterministic given `seed`, and the noise it uses is shared by all images, so
an image's score does not depend on its position in the batch: permuting the inputs permutes
the scores. A conditional model, which scores x given a class, is asked without one: the VAE
averages p(x|c) over the classes (p(x) = Σ_c p(c) p(x|c), uniform p(c)), the diffusion model
uses its unconditional (null-label) prediction, the GAN takes its best class.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from trilemma.errors import UnsupportedRequest
from trilemma.families.capabilities import Critic, Denoiser, Encoder

_LOG_2PI = math.log(2 * math.pi)


def score_method(family: Any) -> str:
    """What `anomaly_scores` computes for this family, in words."""
    if isinstance(family, Encoder) and hasattr(family, "reconstruction_nll"):
        return "IWAE negative log-likelihood (nats)"
    if isinstance(family, Denoiser):
        return "denoising error averaged over timesteps"
    if isinstance(family, Critic):
        return "negative discriminator logit"
    raise UnsupportedRequest(f"a {getattr(family, 'name', type(family).__name__)} model has no "
                             "anomaly score (it has no encoder, denoiser or critic)")


def _batches(n: int, batch_size: int):
    for start in range(0, n, batch_size):
        yield slice(start, min(n, start + batch_size))


def _classes(family: Any) -> list[torch.Tensor | None]:
    num_classes = family.config.data.num_classes
    return [None] if num_classes == 0 else [torch.tensor(c) for c in range(num_classes)]


@torch.no_grad()
def encoder_scores(family: Any, x_model: torch.Tensor, *, k: int = 32, batch_size: int = 128,
                   seed: int = 0) -> dict[str, np.ndarray]:
    """``nll_nats`` = −L_k(x) (IWAE, k importance draws shared by all images), ``bits_per_dim``
    and ``reconstruction_error``: mean squared error of the decoded posterior mean, on
    intensities in [0, 1] for images (model space for points)."""
    device = family.device
    generator = torch.Generator("cpu").manual_seed(seed)
    eps = torch.randn((k, family.config.latent_dim), generator=generator).to(device)
    classes = _classes(family)
    log_px, errors = [], []
    for part in _batches(len(x_model), batch_size):
        x = x_model[part].to(device)
        n = len(x)
        per_class = []
        for c in classes:
            labels = None if c is None else c.expand(n).to(device)
            mean, log_variance = family.encode(x, labels)
            std = (0.5 * log_variance).exp()
            z = mean[:, None] + std[:, None] * eps[None]  # (n, k, latent)
            x_rep = x.repeat_interleave(k, dim=0)
            y_rep = None if labels is None else labels.repeat_interleave(k)
            log_px_z = -family.reconstruction_nll(x_rep, family.decoder(z.flatten(0, 1), y_rep))
            log_pz = -0.5 * (z.double().square() + _LOG_2PI).sum(2)
            log_qz = -0.5 * (eps.double().square()[None] + log_variance.double()[:, None] + _LOG_2PI).sum(2)
            log_w = log_px_z.view(n, k).double() + log_pz - log_qz
            per_class.append(torch.logsumexp(log_w, dim=1) - math.log(k))
            if c is None or int(c) == 0:
                reconstruction = family.decode(mean, labels)
                scale = 0.5 if family.config.data.is_image else 1.0  # [-1, 1] → [0, 1]
                errors.append(((reconstruction - x) * scale).square().flatten(1).mean(1).double().cpu())
        log_px.append((torch.logsumexp(torch.stack(per_class), dim=0) - math.log(len(classes))).cpu())
    nll = -torch.cat(log_px).numpy()
    dims = int(np.prod(x_model.shape[1:]))
    return {"nll_nats": nll, "bits_per_dim": nll / (dims * math.log(2)),
            "reconstruction_error": torch.cat(errors).numpy()}


@torch.no_grad()
def denoiser_scores(family: Any, x_model: torch.Tensor, *, timesteps: int = 10, batch_size: int = 128,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """``denoising_error``: mean over `timesteps` evenly spaced noise levels t of the per-dimension
    ‖ε − ε̂(x_t, t)‖², with x_t = √ᾱ_t x + √(1 − ᾱ_t) ε and one seeded ε per level shared by
    all images. For a v-prediction model ε̂ = √ᾱ_t v̂ + √(1 − ᾱ_t) x_t (Salimans & Ho 2022)."""
    process = family.forward_process
    total = int(process.config.num_train_timesteps)
    levels = torch.linspace(0, total - 1, timesteps + 2)[1:-1].round().long()
    generator = torch.Generator("cpu").manual_seed(seed)
    noises = torch.randn((timesteps, *x_model.shape[1:]), generator=generator)
    alphas_cumprod = process.alphas_cumprod.double()
    null = family.config.data.num_classes  # the label dropped in training: the unconditional model
    device = family.device
    scores = []
    for part in _batches(len(x_model), batch_size):
        x0 = x_model[part].to(device)
        n = len(x0)
        labels = torch.full((n,), null, dtype=torch.long, device=device) if null else None
        error = torch.zeros(n, dtype=torch.float64)
        for t, noise in zip(levels, noises, strict=True):
            a = float(alphas_cumprod[t])
            eps = noise.to(device).expand_as(x0)
            x_t = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
            output, _ = family.model_output(x_t, t.to(device), labels, 1.0)
            if process.config.prediction_type == "v_prediction":
                output = math.sqrt(a) * output + math.sqrt(1 - a) * x_t
            error += (output - eps).double().square().flatten(1).mean(1).cpu()
        scores.append(error / timesteps)
    return {"denoising_error": torch.cat(scores).numpy()}


@torch.no_grad()
def critic_scores(family: Any, x_model: torch.Tensor, *, batch_size: int = 256) -> dict[str, np.ndarray]:
    """``critic_logit``: the discriminator's output on the image as given (no augmentation); for
    a conditional critic the highest over the classes."""
    device = family.device
    logits = []
    for part in _batches(len(x_model), batch_size):
        x = x_model[part].to(device)
        per_class = [family.critic(x, None if c is None else c.expand(len(x)).to(device), augment=False)
                     for c in _classes(family)]
        logits.append(torch.stack(per_class).max(dim=0).values.double().cpu())
    return {"critic_logit": torch.cat(logits).numpy()}


def anomaly_scores(family: Any, x_model: torch.Tensor, *, seed: int = 0, k: int = 32,
                   timesteps: int = 10, batch_size: int = 128) -> dict[str, np.ndarray]:
    """Per-image anomaly scores of `x_model` (model space) in input order: ``score`` (higher =
    more anomalous) and the family's own columns (`encoder_scores`, `denoiser_scores`,
    `critic_scores`). Each value is a float64 array of shape (n,)."""
    score_method(family)  # refuses a family without a score
    was_training = family.training
    family.eval()
    try:
        if isinstance(family, Encoder) and hasattr(family, "reconstruction_nll"):
            columns = encoder_scores(family, x_model, k=k, batch_size=batch_size, seed=seed)
            score = columns["nll_nats"]
        elif isinstance(family, Denoiser):
            columns = denoiser_scores(family, x_model, timesteps=timesteps, batch_size=batch_size, seed=seed)
            score = columns["denoising_error"]
        else:
            columns = critic_scores(family, x_model, batch_size=batch_size)
            score = -columns["critic_logit"]
    finally:
        family.train(was_training)
    return {"score": np.asarray(score, dtype=np.float64), **columns}


def auroc(scores: np.ndarray, anomalous: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for telling anomalous (1) from normal (0) inputs:
    the probability that a random anomaly scores higher than a random normal input, ties
    counting one half (sklearn's `roc_auc_score`). 0.5 is chance, 1 perfect."""
    from sklearn.metrics import roc_auc_score

    anomalous = np.asarray(anomalous)
    if len(np.unique(anomalous)) != 2:
        raise UnsupportedRequest("AUROC needs both normal (0) and anomalous (1) inputs among the labels")
    return float(roc_auc_score(anomalous, np.asarray(scores)))


def score_images(run: Any, images: Any, *, source: str = "images", **settings: Any) -> dict[str, np.ndarray]:
    """`anomaly_scores` of user-space images (uint8 N×H×W×C as `trilemma sample` writes, N×H×W,
    or float in [0, 1]; float points for 2-D runs) for a loaded run, after checking their shape
    against the run's (one-line `DataError` naming `source` if it differs)."""
    from trilemma.capabilities.inputs import run_sample_shape, to_model_space

    x_model = to_model_space(images, run_sample_shape(run.config), run.normalizer, source)
    return anomaly_scores(run.family, x_model, **settings)
