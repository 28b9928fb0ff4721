"""Real data, framework-free: scikit-learn's bundled 8x8 handwritten digits (no download).

The digits set (1797 images, 10 classes, pixel values 0..16) ships inside scikit-learn. It is split
once, stratified, with a fixed seed, so every run of every framework sees the very same train and
test images; per-epoch shuffling is a numpy generator seeded from the run's seed, also shared.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from frameduel.errors import FrameduelError

DIGITS_CLASSES = 10
DIGITS_MAX_PIXEL = 16.0  # load_digits pixels are integers 0..16
TEST_FRACTION = 0.2
SPLIT_SEED = 20240601  # fixed: the split is part of the benchmark's definition, not of a run
SHUFFLE_STREAM = 7  # mixed with a run's seed so shuffling does not share a stream with weight init
TRAIN_IMAGES = 1438  # size of the train split (1797 images, 359 held out); checked by the tests


@dataclass(frozen=True)
class DigitsSplit:
    train_images: np.ndarray  # (N_train, 8, 8) float32 in [0, 1]
    train_labels: np.ndarray  # (N_train,) int64
    test_images: np.ndarray  # (N_test, 8, 8) float32 in [0, 1]
    test_labels: np.ndarray  # (N_test,) int64


def check_sklearn() -> None:
    """The data set comes with scikit-learn: say how to get it, without importing it here."""
    if importlib.util.find_spec("sklearn") is None:
        raise FrameduelError("the digits data set needs scikit-learn; install it: pip install -e '.[cpu]'")


def stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices), sorted: each class contributes round(test_fraction * its count) to test.

    Done in numpy rather than with sklearn's train_test_split so the split cannot change with the
    installed scikit-learn version.
    """
    rng = np.random.default_rng(seed)
    test = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        test.append(rng.permutation(members)[: round(test_fraction * len(members))])
    test_idx = np.sort(np.concatenate(test))
    train_idx = np.setdiff1d(np.arange(len(labels)), test_idx)
    return train_idx, test_idx


def load_digits_split() -> DigitsSplit:
    check_sklearn()
    from sklearn.datasets import load_digits  # scikit-learn is an optional dependency (cpu/gpu extras)

    digits = load_digits()
    images = (digits.images / DIGITS_MAX_PIXEL).astype(np.float32)  # (1797, 8, 8)
    labels = digits.target.astype(np.int64)  # (1797,)
    train_idx, test_idx = stratified_split(labels, TEST_FRACTION, SPLIT_SEED)
    return DigitsSplit(images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])


def shuffle_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng([SHUFFLE_STREAM, seed])


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's index batches: a fresh permutation, the last partial batch dropped (static shapes)."""
    order = rng.permutation(n)
    return [order[start : start + batch_size] for start in range(0, n - batch_size + 1, batch_size)]
