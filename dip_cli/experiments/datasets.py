"""The data sets of the classifier experiments, all shipped inside scikit-learn's wheel.

- ``digits``: 1797 images of 8x8 pixels (values 0-16, scaled to [0, 1]), 10 classes, split
  1347 train / 450 test, stratified by class.
- ``breast-cancer``: 569 rows of 30 measurements, 2 classes, split 426 / 143, stratified; each
  feature standardised with the training rows' mean and deviation (the test rows stay unseen).

The split depends on the seed, so a run on another seed also sees other training examples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dip_cli.errors import InputError

TEST_SIZE = 450  # digits
TABLE_TEST_FRACTION = 0.25  # breast-cancer: 143 of its 569 rows
DATA_SETS = ("digits", "breast-cancer")


@dataclass
class Split:
    x_train: np.ndarray  # (n, features) float32
    y_train: np.ndarray  # (n,) int64 class labels
    x_test: np.ndarray
    y_test: np.ndarray


Digits = Split  # the name the digits experiments use


def load_data(name: str, seed: int) -> Split:
    """``name`` (one of ``DATA_SETS``), split by ``seed``."""
    if name == "digits":
        return load_digits(seed)
    if name == "breast-cancer":
        return load_breast_cancer(seed)
    raise InputError(f"--data must be one of {', '.join(DATA_SETS)}, got {name!r}")


def load_digits(seed: int, test_size: int = TEST_SIZE) -> Split:
    """The digits, split ``len - test_size`` / ``test_size``, stratified, shuffled by ``seed``."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    x, y = sklearn_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_size, stratify=y, random_state=seed
    )
    return Split(x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64))


def load_breast_cancer(seed: int) -> Split:
    """The breast-cancer table, split 426 / 143 by ``seed``, standardised on the training rows."""
    from sklearn.datasets import load_breast_cancer as sklearn_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = sklearn_breast_cancer(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TABLE_TEST_FRACTION, stratify=y, random_state=seed
    )
    mean, std = x_train.mean(0), x_train.std(0)
    return Split(
        ((x_train - mean) / std).astype(np.float32),
        y_train.astype(np.int64),
        ((x_test - mean) / std).astype(np.float32),
        y_test.astype(np.int64),
    )
