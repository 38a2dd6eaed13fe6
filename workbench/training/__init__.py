"""Training: InfoNCE loss, the trainer (checkpoints, exact resume) and the training-dynamics recorder."""

from .dynamics import DYNAMICS_COLUMNS, DynamicsRecorder
from .losses import cosent, info_nce
from .train_config import LabelledNegatives, TrainConfig, TrainingInterrupted, TrainResult
from .trainer import train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "train",
    "info_nce",
    "cosent",
    "LabelledNegatives",
    "DynamicsRecorder",
    "DYNAMICS_COLUMNS",
]
