"""Anomaly scores per image from any family, higher meaning more anomalous, and their AUROC.

The statistics follow what the model can do (its capability protocols), never its name:

- `Likelihood` (VAE): −log p(x) by the importance-weighted bound (Burda et al. 2016, eq. 8),
  in nats, with bits/dim, the reconstruction error of the posterior mean, and the posterior's
  KL divergence from the prior and its entropy beside it;
- `Denoiser` (diffusion): the denoising error, ‖ε − ε̂(x_t, t)‖² averaged over a fixed set of
  noise levels, the Monte-Carlo form of Ho et al.'s L_simple, a reweighted variational bound;
- `Critic` (GAN): the negative discriminator logit on the un-augmented image;
- `LatentModel` (latent diffusion): the autoencoder's reconstruction error and the latent
  model's denoising error on the image's latent.

A likelihood is a poor anomaly score on its own: simple images (a thin "1", a blank page)
are more likely under a model of digits than the digits it was trained on (Nalisnick et al.
2019, "Do deep generative models know what they don't know?"). So for the two likelihood-like
families the `score` is a typicality test (Nalisnick et al. 2019, "Detecting out-of-
distribution inputs … using typicality"; with several statistics as in DoSE, Morningstar et
al. 2021): the Mahalanobis distance of the image's statistics from their distribution over
`reference` images of the training data (mean and Ledoit–Wolf covariance). The statistics are
DoSE's for an encoder (NLL, log reconstruction error, KL, posterior entropy) and the log
denoising error for a denoiser. An image is anomalous when it is less likely *or* more likely
than training images are. Without a reference the score is the raw statistic. The critic's
score is one-sided: it was trained to rank real above everything else.

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

from trilemma.capabilities._common import family_device
from trilemma.errors import UnsupportedRequest
from trilemma.families.capabilities import Critic, Denoiser, LatentModel, Likelihood
from trilemma.metrics.likelihood import importance_log_weights

_LOG_2PI = math.log(2 * math.pi)


def score_method(family: Any, typicality: bool = True) -> str:
    """What `anomaly_scores` computes for this family, in words (`typicality`: with a reference)."""
    if isinstance(family, Likelihood):
        statistic = "IWAE negative log-likelihood (nats), reconstruction error, KL and posterior entropy"
        return f"typicality of the {statistic}" if typicality else "IWAE negative log-likelihood (nats)"
    if isinstance(family, Denoiser):
        statistic = "denoising error averaged over timesteps"
        return f"typicality of the {statistic}" if typicality else statistic
    if isinstance(family, LatentModel):
        statistic = "reconstruction error and latent denoising error"
        return f"typicality of the {statistic}" if typicality else "latent denoising error"
    if isinstance(family, Critic):
        if getattr(family.config, "pac", 1) > 1:
            raise UnsupportedRequest(f"this GAN's critic judges packs of {family.config.pac} rows (PacGAN), not "
                                     "one row: it gives no score per row")
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
    """``nll_nats`` = −L_k(x) (IWAE, k importance draws shared by all images), ``bits_per_dim``,
    ``reconstruction_error``: mean squared error of the decoded posterior mean, on intensities
    in [0, 1] for images (model space for points), and ``kl_nats`` = KL(q(z|x) ‖ N(0, I)) and
    ``posterior_entropy_nats`` = H[q(z|x)] (for a conditional model, given class 0)."""
    device = family.device
    generator = torch.Generator("cpu").manual_seed(seed)
    eps = torch.randn((k, family.config.latent_dim), generator=generator).to(device)
    classes = _classes(family)
    log_px, errors, kl, entropy = [], [], [], []
    for part in _batches(len(x_model), batch_size):
        x = x_model[part].to(device)
        n = len(x)
        per_class = []
        for c in classes:
            labels = None if c is None else c.expand(n).to(device)
            mean, log_variance = family.encode(x, labels)
            log_w = importance_log_weights(family, x, labels, mean, log_variance, eps)
            per_class.append(torch.logsumexp(log_w, dim=1) - math.log(k))
            if c is None or int(c) == 0:
                errors.append(_reconstruction_error(family, x, mean, labels))
                mean, log_variance = mean.double(), log_variance.double()
                kl.append((0.5 * (mean.square() + log_variance.exp() - 1 - log_variance)).sum(1).cpu())
                entropy.append((0.5 * (log_variance + 1 + _LOG_2PI)).sum(1).cpu())
        log_px.append((torch.logsumexp(torch.stack(per_class), dim=0) - math.log(len(classes))).cpu())
    nll = -torch.cat(log_px).numpy()
    dims = int(np.prod(x_model.shape[1:]))
    return {"nll_nats": nll, "bits_per_dim": nll / (dims * math.log(2)),
            "reconstruction_error": torch.cat(errors).numpy(), "kl_nats": torch.cat(kl).numpy(),
            "posterior_entropy_nats": torch.cat(entropy).numpy()}


@torch.no_grad()
def denoiser_scores(family: Any, x_model: torch.Tensor, *, timesteps: int = 10, batch_size: int = 128,
                    seed: int = 0) -> dict[str, np.ndarray]:
    """``denoising_error``: mean over `timesteps` noise levels, evenly spaced strictly between the
    schedule's clean and noisy ends, of the per-dimension ‖ε − ε̂(x_t, t)‖², with
    x_t = α_t x + σ_t ε and one seeded ε per level shared by all images; ε̂ is the denoiser's
    unclipped, unconditional estimate."""
    schedule = family.noise_schedule
    levels = [schedule.level_at((i + 1) / (timesteps + 1)) for i in range(timesteps)]
    generator = torch.Generator("cpu").manual_seed(seed)
    noises = torch.randn((timesteps, *x_model.shape[1:]), generator=generator)
    device = family_device(family)
    scores = []
    for part in _batches(len(x_model), batch_size):
        x0 = x_model[part].to(device)
        error = torch.zeros(len(x0), dtype=torch.float64)
        for t, noise in zip(levels, noises, strict=True):
            eps = noise.to(device).expand_as(x0)
            denoised = family.denoise(schedule.add_noise(x0, eps, t), t, None, 1.0, clip=False)
            error += (denoised.eps - eps).square().flatten(1).mean(1).cpu()
        scores.append(error / timesteps)
    return {"denoising_error": torch.cat(scores).numpy()}


def _reconstruction_error(family: Any, x: torch.Tensor, mean: torch.Tensor,
                          labels: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image mean squared error of the decoded latent mean, on intensities in [0, 1] for
    images (model space for points), float64 on the CPU."""
    scale = 0.5 if family.config.data.is_image else 1.0  # [-1, 1] → [0, 1]
    return ((family.decode(mean, labels) - x) * scale).square().flatten(1).mean(1).double().cpu()


@torch.no_grad()
def latent_scores(family: Any, x_model: torch.Tensor, *, timesteps: int = 10, batch_size: int = 128,
                  seed: int = 0) -> dict[str, np.ndarray]:
    """``reconstruction_error``: mean squared error of the decoded latent mean (on intensities in
    [0, 1] for images), and ``denoising_error``: `denoiser_scores` of the latent model on the
    standardised latent means."""
    device = family_device(family)
    latents, errors = [], []
    for part in _batches(len(x_model), batch_size):
        x = x_model[part].to(device)
        mean, _ = family.encode(x)
        errors.append(_reconstruction_error(family, x, mean))
        latents.append(family.to_prior(mean).cpu())
    latent = denoiser_scores(family.latent_denoiser, torch.cat(latents), timesteps=timesteps,
                             batch_size=batch_size, seed=seed)
    return {"reconstruction_error": torch.cat(errors).numpy(), **latent}


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


def _statistics(family: Any, x_model: torch.Tensor, *, seed: int, k: int, timesteps: int,
                batch_size: int) -> dict[str, np.ndarray]:
    if isinstance(family, Likelihood):
        return encoder_scores(family, x_model, k=k, batch_size=batch_size, seed=seed)
    if isinstance(family, LatentModel):
        return latent_scores(family, x_model, timesteps=timesteps, batch_size=batch_size, seed=seed)
    if isinstance(family, Denoiser):
        return denoiser_scores(family, x_model, timesteps=timesteps, batch_size=batch_size, seed=seed)
    return critic_scores(family, x_model, batch_size=batch_size)


def _typicality_features(columns: dict[str, np.ndarray]) -> np.ndarray | None:
    """The statistics a typicality test compares, (n, d), or None for a one-sided (critic) score.
    Errors enter as logarithms: they span orders of magnitude and are near log-normal.

    For an encoder these are DoSE's four. Leaving one mnist digit out (VAE, 3 minutes, ten runs;
    `benchmarks/probe_anomaly_statistics.py`) they average AUROC 0.845 against 0.790 for (NLL,
    log reconstruction error) alone; on sklearn's 8x8 digits 0.838 against 0.879. Their worst
    case over the two data sets is the better one."""
    if "nll_nats" in columns:
        return np.stack([columns["nll_nats"], np.log(columns["reconstruction_error"] + 1e-12),
                         columns["kl_nats"], columns["posterior_entropy_nats"]], axis=1)
    if "denoising_error" in columns:
        errors = [columns[k] for k in ("reconstruction_error", "denoising_error") if k in columns]
        return np.log(np.stack(errors, axis=1) + 1e-12)
    return None


def mahalanobis(features: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Distance of each row of `features` from the distribution of `reference` rows: √((f − μ)ᵀ Σ⁻¹
    (f − μ)) with μ the reference mean and Σ its Ledoit–Wolf shrunk covariance (well conditioned
    for a few hundred rows)."""
    from sklearn.covariance import LedoitWolf

    if len(reference) < 2:
        raise UnsupportedRequest(f"a typicality reference needs at least 2 images, not {len(reference)}")
    fit = LedoitWolf().fit(reference)
    return np.sqrt(fit.mahalanobis(features))


def anomaly_scores(family: Any, x_model: torch.Tensor, *, reference: torch.Tensor | None = None, seed: int = 0,
                   k: int = 32, timesteps: int = 10, batch_size: int = 128) -> dict[str, np.ndarray]:
    """Per-image anomaly scores of `x_model` (model space) in input order: ``score`` (higher =
    more anomalous) and the family's own statistics (`encoder_scores`, `denoiser_scores`,
    `critic_scores`). With `reference`, in-distribution images in model space (e.g. a thousand
    training images), the score of an encoder or denoiser is the typicality distance (module
    docstring); without, its raw statistic. Each value is a float64 array of shape (n,)."""
    score_method(family)  # refuses a family without a score
    settings = {"seed": seed, "k": k, "timesteps": timesteps, "batch_size": batch_size}
    was_training = family.training
    family.eval()
    try:
        columns = _statistics(family, x_model, **settings)
        features = _typicality_features(columns)
        if features is not None and reference is not None:
            score = mahalanobis(features, _typicality_features(_statistics(family, reference, **settings)))
        elif "critic_logit" in columns:
            score = -columns["critic_logit"]
        else:
            score = columns["nll_nats"] if "nll_nats" in columns else columns["denoising_error"]
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


REFERENCE_N = 1000


def draw_reference(dataset: Any, n: int = REFERENCE_N, seed: int = 0, normalizer: Any = None) -> torch.Tensor:
    """`n` images (all, if fewer) drawn with `seed` from `dataset`'s training split, in model space
    (by `normalizer`, the dataset's own by default): a typicality reference."""
    x = dataset.x_train
    pick = np.sort(np.random.default_rng(seed).choice(len(x), min(n, len(x)), replace=False))
    return (normalizer or dataset.normalizer).to_model(x[torch.from_numpy(pick)])


def training_reference(run: Any, n: int = REFERENCE_N, seed: int = 0) -> torch.Tensor:
    """`draw_reference` from the run's own training data, reloaded from the data spec in its config."""
    from trilemma.data import load_data
    from trilemma.errors import DataError

    spec = run.config.get("data", {}).get("spec") or run.config.get("data", {}).get("name")
    try:
        dataset = load_data(spec)
    except DataError as error:
        raise DataError(f"the typicality reference is the run's training data ({spec}), which cannot be read "
                        f"now: {error}; give in-distribution images with --reference FILE.npz") from None
    return draw_reference(dataset, n, seed, run.normalizer)


def score_images(run: Any, images: Any, *, source: str = "images", reference: Any = "training",
                 reference_source: str = "the typicality reference", **settings: Any) -> dict[str, np.ndarray]:
    """`anomaly_scores` of user-space images (uint8 N×H×W×C as `trilemma sample` writes, N×H×W,
    or float in [0, 1]; float points for 2-D runs) for a loaded run, after checking their shape
    against the run's (one-line `DataError` naming `source` if it differs). `reference`:
    "training" (`training_reference`), None (raw statistics), or user-space images (checked
    likewise, errors naming `reference_source`)."""
    from trilemma.io import to_model_space

    shape = tuple(run.family.config.data.sample_shape)
    x_model = to_model_space(images, shape, run.normalizer, source)
    if isinstance(reference, str) and reference == "training":
        reference = training_reference(run, seed=settings.get("seed", 0))
    elif reference is not None:
        reference = to_model_space(reference, shape, run.normalizer, reference_source)
    return anomaly_scores(run.family, x_model, reference=reference, **settings)
