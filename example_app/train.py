"""A small Hydra app worth sweeping: logistic regression on synthetic data, in numpy.

    python example_app/train.py -m hydra/sweeper=grid lr="uniform(1e-3,1e-1,3)" epochs="[5,10]"
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, List

import hydra
import numpy as np
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

log = logging.getLogger(__name__)


@dataclass
class OptimizerConfig:
    name: str = MISSING
    momentum: float = 0.0


@dataclass
class SGD(OptimizerConfig):
    name: str = "sgd"


@dataclass
class Momentum(OptimizerConfig):
    name: str = "momentum"
    momentum: float = 0.9


@dataclass
class TrainConfig:
    defaults: List[Any] = field(default_factory=lambda: ["_self_", {"optimizer": "sgd"}])
    optimizer: OptimizerConfig = MISSING
    lr: float = 0.05
    epochs: int = 10
    layers: int = 1  # polynomial feature degree: 1 = plain logistic regression
    standardize: bool = True
    model: str = "logreg"
    batch_size: int = 32
    seed: int = 0
    samples: int = 600


cs = ConfigStore.instance()
cs.store(name="train", node=TrainConfig)
cs.store(group="optimizer", name="sgd", node=SGD)
cs.store(group="optimizer", name="momentum", node=Momentum)


def make_data(samples: int, seed: int) -> tuple:
    """Two noisy, not linearly separable classes in 2-D."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(samples, 2)) * [2.0, 0.5] + [1.0, -3.0]
    logits = 1.5 * x[:, 0] - 0.8 * x[:, 1] ** 2 + 0.3 * x[:, 0] * x[:, 1] + 6.0
    y = (rng.random(samples) < 1 / (1 + np.exp(-logits))).astype(float)
    return x, y


def features(x: np.ndarray, degree: int) -> np.ndarray:
    columns = [np.ones(len(x))]
    for d in range(1, max(1, degree) + 1):
        columns += [x[:, 0] ** d, x[:, 1] ** d]
    if degree >= 2:
        columns.append(x[:, 0] * x[:, 1])
    return np.stack(columns, axis=1)


def log_loss(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(1 / (1 + np.exp(-x @ w)), 1e-12, 1 - 1e-12)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def train(cfg: Any) -> float:
    """Fit by mini-batch gradient descent; return the validation log loss."""
    if cfg.model != "logreg":
        raise ValueError(f"unknown model {cfg.model!r}: this example only has 'logreg'")
    x, y = make_data(cfg.samples, cfg.seed)
    split = int(0.8 * len(x))
    x_all = features(x, cfg.layers)
    if cfg.standardize:
        mean, std = x_all[:split, 1:].mean(0), x_all[:split, 1:].std(0) + 1e-9
        x_all[:, 1:] = (x_all[:, 1:] - mean) / std
    x_train, y_train, x_val, y_val = x_all[:split], y[:split], x_all[split:], y[split:]
    rng = np.random.default_rng(cfg.seed + 1)
    w = np.zeros(x_all.shape[1])
    velocity = np.zeros_like(w)
    for _ in range(cfg.epochs):
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), cfg.batch_size):
            batch = order[start : start + cfg.batch_size]
            p = 1 / (1 + np.exp(-x_train[batch] @ w))
            gradient = x_train[batch].T @ (p - y_train[batch]) / len(batch)
            velocity = cfg.optimizer.momentum * velocity - cfg.lr * gradient
            w = w + velocity
    return log_loss(w, x_val, y_val)


@hydra.main(version_base=None, config_name="train")
def main(cfg: Any) -> float:
    loss = train(cfg)
    log.info(f"val_loss={loss:.4f} lr={cfg.lr} epochs={cfg.epochs} layers={cfg.layers} "
             f"optimizer={cfg.optimizer.name}")
    return loss


if __name__ == "__main__":
    main()
