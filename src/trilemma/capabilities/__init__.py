"""What each family is known for, measured: anomaly scores, the fidelity knob's sweep, conditional
generation's accuracy and generated data as augmentation. Each function takes a loaded run
(`trilemma.sampling.load_run`) and returns plain dicts and arrays; the CLI and the report call
them and pick the method from the family's capability protocols, never from its name."""

from trilemma.capabilities.anomaly import anomaly_scores, auroc, score_method
from trilemma.capabilities.augmentation import augmentation_table, stratified_subset
from trilemma.capabilities.conditional import conditional_accuracy
from trilemma.capabilities.truncation import fidelity_sweep, knob_of

__all__ = [
    "anomaly_scores",
    "augmentation_table",
    "auroc",
    "conditional_accuracy",
    "fidelity_sweep",
    "knob_of",
    "score_method",
    "stratified_subset",
]
