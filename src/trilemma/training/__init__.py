"""Training: the one loop (`loop.py`), its budget (`budget.py`), the run folder it writes
(`run_folder.py`) and what the user sees meanwhile (`progress.py`)."""

from trilemma.training.batches import DEVICE_RESIDENT_BYTES
from trilemma.training.budget import Budget, default_budget, learning_rate_scale
from trilemma.training.loop import TrainingRun, TrainResult, train
from trilemma.training.run_folder import BATCH_RULE

__all__ = ["BATCH_RULE", "DEVICE_RESIDENT_BYTES", "Budget", "TrainResult", "TrainingRun",
           "default_budget", "learning_rate_scale", "train"]
