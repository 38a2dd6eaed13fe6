"""Training: InfoNCE loss, the trainer (checkpoints, exact resume) and the training-dynamics recorder."""

from .dynamics import DYNAMICS_COLUMNS, DynamicsRecorder
from .losses import info_nce
from .trainer import TrainConfig, TrainingInterrupted, TrainResult, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "train",
    "info_nce",
    "DynamicsRecorder",
    "DYNAMICS_COLUMNS",
]
