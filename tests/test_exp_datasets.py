"""The classifier experiments' data sets: the splits and the scaling they state."""

from __future__ import annotations

import numpy as np
import pytest

from dip_cli.errors import InputError
from dip_cli.experiments.datasets import DATA_SETS, load_data


def test_digits_split_1347_450_by_class_in_0_1():
    data = load_data("digits", 0)
    assert data.x_train.shape == (1347, 64) and data.x_test.shape == (450, 64)
    assert data.x_train.dtype == np.float32 and data.x_train.min() >= 0 and data.x_train.max() <= 1
    assert np.bincount(data.y_test).min() >= 40  # stratified: each class ~45 of the 450 (43-46)


def test_breast_cancer_is_split_and_standardised_on_its_training_rows():
    data = load_data("breast-cancer", 0)
    assert data.x_train.shape == (426, 30) and data.x_test.shape == (143, 30)
    assert np.allclose(data.x_train.mean(0), 0, atol=1e-4) and np.allclose(data.x_train.std(0), 1, atol=1e-3)
    assert not np.allclose(data.x_test.mean(0), 0, atol=1e-3)  # the test rows were not used
    assert set(np.unique(data.y_train)) == {0, 1} and data.y_train.dtype == np.int64


@pytest.mark.parametrize("name", DATA_SETS)
def test_the_seed_chooses_the_split(name):
    first, again, other = load_data(name, 0), load_data(name, 0), load_data(name, 1)
    assert np.array_equal(first.x_train, again.x_train)
    assert not np.array_equal(first.x_train, other.x_train)


def test_an_unknown_data_set_is_an_input_error():
    with pytest.raises(InputError, match="--data must be one of digits, breast-cancer"):
        load_data("mnist", 0)
