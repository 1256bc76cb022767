"""Feature extraction: the one place images become the vectors every feature metric reads.

Fréchet distance, KID, precision/recall, density/coverage and feature-space memorisation all
compare sets of feature vectors, so the number they give depends on the extractor as much as
on the samples. Each extractor therefore carries a `name` and a `weights_sha256` that every
result records, and a one-sentence `limits` saying what the numbers can be compared with:

- `InceptionV3Extractor`: Inception-v3 in the pytorch-fid layout, from the weights file the
  user provides. The only extractor whose Fréchet distance is a FID comparable with
  published ones (Heusel et al. 2017; pytorch-fid by Seitzer).
- `DomainClassifierExtractor`: the small LeNet-style classifier shipped for each built-in
  labelled data set (`mnist`, `digits`), trained on its training split only. The standard
  choice for MNIST-scale data; it also gives class probabilities.
- `RandomConvExtractor`: a fixed, seeded, untrained convolutional net, for a user's folder
  with neither. Random embeddings rank generative models sensibly (Naeem et al. 2020,
  "Reliable fidelity and diversity metrics for generative models", §5), but the numbers only
  compare runs scored by the same extractor on the same data.

Features are computed once per sample set and cached (`FeatureCache`, `cached_features`),
keyed by the extractor's identity and the sha256 of the image bytes.
"""

from trilemma.metrics.features.base import FeatureExtractor
from trilemma.metrics.features.cache import FeatureCache, cached_features
from trilemma.metrics.features.extractors import (
    DomainClassifierExtractor,
    InceptionV3Extractor,
    RandomConvExtractor,
    StackedDigitsExtractor,
    available_domain_classifiers,
    extractor_for,
    frechet_name,
    shipped_weights_dir,
)
from trilemma.metrics.features.images import as_uint8_nchw, images_sha256
from trilemma.nets.inception import InceptionV3, load_inception

__all__ = [
    "DomainClassifierExtractor",
    "FeatureCache",
    "FeatureExtractor",
    "InceptionV3",
    "InceptionV3Extractor",
    "RandomConvExtractor",
    "StackedDigitsExtractor",
    "as_uint8_nchw",
    "available_domain_classifiers",
    "cached_features",
    "extractor_for",
    "frechet_name",
    "images_sha256",
    "load_inception",
    "shipped_weights_dir",
]
