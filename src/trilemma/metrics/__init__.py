"""Measures of generated samples: fidelity, diversity, mode coverage, sharpness, memorisation.

Definitions and the independent references they are tested against: METRICS.md. How each
figure is labelled, written and reported: `trilemma.metrics.catalogue`.
"""

from trilemma.metrics.classes import class_histogram, classifier_score
from trilemma.metrics.features import (
    DomainClassifierExtractor,
    FeatureCache,
    FeatureExtractor,
    InceptionV3Extractor,
    RandomConvExtractor,
    cached_features,
    extractor_for,
    frechet_name,
)
from trilemma.metrics.frechet import (
    fid,
    frechet_bias_estimate,
    frechet_distance,
    frechet_statistics,
)
from trilemma.metrics.kernel import kid
from trilemma.metrics.memorisation import memorisation
from trilemma.metrics.modes import mode_statistics, mode_statistics_for
from trilemma.metrics.prdc import prdc
from trilemma.metrics.sharpness import (
    laplacian_variance,
    relative_sharpness,
    sharpness_against_real,
)

__all__ = [
    "DomainClassifierExtractor",
    "FeatureCache",
    "FeatureExtractor",
    "InceptionV3Extractor",
    "RandomConvExtractor",
    "cached_features",
    "class_histogram",
    "classifier_score",
    "extractor_for",
    "fid",
    "frechet_bias_estimate",
    "frechet_distance",
    "frechet_name",
    "frechet_statistics",
    "kid",
    "laplacian_variance",
    "memorisation",
    "mode_statistics",
    "mode_statistics_for",
    "prdc",
    "relative_sharpness",
    "sharpness_against_real",
]
