"""Training: the Trainer, its strategies (mcmc, adc), losses, checkpoints and evaluation."""

from .config import TrainConfig
from .evaluate import evaluate
from .trainer import Trainer

__all__ = ["TrainConfig", "Trainer", "evaluate"]
