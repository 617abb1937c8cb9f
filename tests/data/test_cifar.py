"""keras_ssl.data.cifar: the CIFAR-10 .npz reader."""

import numpy as np
import pytest

from keras_ssl.data.cifar import CIFAR10_LABELS, load_cifar10_npz
from keras_ssl.testing import shared_data_file

# Files, cards and text only: no backend in play (see conftest.py).
pytestmark = pytest.mark.any_backend


def _small_npz(path, **overrides):
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8),
        "y_train": np.array([0, 1, 9, 3], dtype=np.uint8),
        "x_test": rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8),
        "y_test": np.array([[5], [6]], dtype=np.int64),
    }
    for key, value in overrides.items():
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    np.savez(path, **arrays)
    return arrays


def test_npz_round_trip(tmp_path):
    path = tmp_path / "c.npz"
    arrays = _small_npz(path)
    (x_train, y_train), (x_test, y_test) = load_cifar10_npz(path)
    np.testing.assert_array_equal(x_train, arrays["x_train"])
    np.testing.assert_array_equal(x_test, arrays["x_test"])
    assert y_train.dtype == np.uint8 and y_train.tolist() == [0, 1, 9, 3]
    assert y_test.dtype == np.uint8 and y_test.shape == (2,)
    assert y_test.tolist() == [5, 6]


def test_npz_missing_key(tmp_path):
    path = tmp_path / "c.npz"
    _small_npz(path, y_test=None)
    with pytest.raises(ValueError, match="y_test"):
        load_cifar10_npz(path)


def test_npz_wrong_shape_and_dtype(tmp_path):
    path = tmp_path / "shape.npz"
    _small_npz(path, x_test=np.zeros((2, 3, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"x_test.*\(N, 32, 32, 3\).*\(2, 3, 32, 32\)"):
        load_cifar10_npz(path)

    path = tmp_path / "dtype.npz"
    _small_npz(path, x_train=np.zeros((4, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="x_train.*uint8.*float32"):
        load_cifar10_npz(path)

    path = tmp_path / "labels.npz"
    _small_npz(path, y_train=np.array([0, 1, 2, 10]))
    with pytest.raises(ValueError, match="y_train.*0..9"):
        load_cifar10_npz(path)

    path = tmp_path / "count.npz"
    _small_npz(path, y_train=np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"y_train.*\(4,\).*\(3,\)"):
        load_cifar10_npz(path)


def test_npz_object_array_refused(tmp_path):
    path = tmp_path / "obj.npz"
    _small_npz(path, y_train=np.array([0, 1, 2, None], dtype=object))
    with pytest.raises(ValueError, match="y_train"):
        load_cifar10_npz(path)


def test_npz_missing_path_and_garbage(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_cifar10_npz(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="bad.npz"):
        load_cifar10_npz(bad)


def test_cifar10_labels():
    assert CIFAR10_LABELS[0] == "airplane" and CIFAR10_LABELS[9] == "truck" and len(CIFAR10_LABELS) == 10


def test_shared_cifar10_npz():
    (x_train, y_train), (x_test, y_test) = load_cifar10_npz(shared_data_file("cifar10/cifar10.npz"))

    assert x_train.shape == (50000, 32, 32, 3)
    assert x_test.shape == (10000, 32, 32, 3)
    assert y_train.shape == (50000,)
    assert y_test.shape == (10000,)
    assert x_train.dtype == y_train.dtype == np.uint8
    assert np.bincount(y_train, minlength=10).tolist() == [5000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [1000] * 10
    means = x_train.reshape(-1, 3).mean(axis=0, dtype=np.float64) / 255.0
    np.testing.assert_allclose(means, [0.4914, 0.4822, 0.4465], atol=5e-4)
