"""Training: the :class:`Trainer`, its :class:`History` and state, and the callbacks."""

from genvae.training.callbacks import (
    Callback,
    CSVLogger,
    EarlyStopping,
    KLWarmup,
    LRScheduler,
    ModelCheckpoint,
    ProgressBar,
    TerminateOnNaN,
)
from genvae.training.checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from genvae.training.epoch_log import EpochLog
from genvae.training.state import History, TrainerState
from genvae.training.tensorboard import TensorBoard
from genvae.training.trackers import MLflowLogger, TrackerError, WandbLogger
from genvae.training.trainer import DivergenceError, Trainer, resolve_device

__all__ = [
    "CSVLogger",
    "Callback",
    "CheckpointError",
    "DivergenceError",
    "EarlyStopping",
    "EpochLog",
    "History",
    "KLWarmup",
    "LRScheduler",
    "MLflowLogger",
    "ModelCheckpoint",
    "ProgressBar",
    "TensorBoard",
    "TerminateOnNaN",
    "TrackerError",
    "Trainer",
    "TrainerState",
    "WandbLogger",
    "read_checkpoint",
    "resolve_device",
    "write_checkpoint",
]
