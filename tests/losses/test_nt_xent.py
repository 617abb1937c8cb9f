"""Tests for keras_ssl.losses.nt_xent against a per-anchor NumPy reference."""

import itertools

import keras
import numpy as np
import pytest
from keras import ops

from keras_ssl.losses.nt_xent import NTXent, nt_xent


def reference_nt_xent(z1, z2, temperature):
    """SimCLR eq. 1 written out anchor by anchor, in float64."""
    z = np.concatenate([z1, z2], axis=0).astype("float64")
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    two_n = len(z)
    n = two_n // 2
    total = 0.0
    for i in range(two_n):
        positive = (i + n) % two_n
        sims = np.array([z[i] @ z[j] for j in range(two_n)]) / temperature
        denominator = sum(np.exp(sims[j]) for j in range(two_n) if j != i)
        total += -np.log(np.exp(sims[positive]) / denominator)
    return total / two_n


def pair(batch, dim, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    z1 = rng.normal(size=(batch, dim)).astype("float32") * scale
    z2 = (z1 + rng.normal(size=(batch, dim)).astype("float32") * 0.5 * scale).astype("float32")
    return z1, z2


def as_float(x):
    return float(ops.convert_to_numpy(x))


def test_reference_sanity():
    # Two orthogonal images whose views coincide: every anchor's positive
    # has similarity 1, its 2 negatives have similarity 0.
    z1 = np.eye(2, 3)
    t = 0.5
    expected = -np.log(np.exp(2.0) / (np.exp(2.0) + 2.0))
    np.testing.assert_allclose(reference_nt_xent(z1, z1, t), expected, rtol=1e-12)


# The whole grid in one test: the conftest's teardown clears the Keras
# session after every test, which is not free.
def test_matches_reference_over_grid():
    for batch, dim, temperature in itertools.product((2, 3, 8), (4, 16), (0.05, 0.1, 0.5, 1.0)):
        z1, z2 = pair(batch, dim, seed=batch * 100 + dim)
        got = as_float(nt_xent(z1, z2, temperature))
        want = reference_nt_xent(z1, z2, temperature)
        np.testing.assert_allclose(
            got, want, rtol=1e-4, atol=1e-5, err_msg=f"batch={batch}, dim={dim}, temperature={temperature}"
        )


def test_call_forms_and_result_type():
    z1, z2 = pair(8, 16)
    # Backend tensors as well as NumPy arrays.
    got = nt_xent(ops.convert_to_tensor(z1), ops.convert_to_tensor(z2), 0.2)
    assert keras.backend.standardize_dtype(got.dtype) == "float32"
    assert tuple(got.shape) == ()
    np.testing.assert_allclose(as_float(got), reference_nt_xent(z1, z2, 0.2), rtol=1e-4)
    # The default temperature is 0.5.
    np.testing.assert_allclose(as_float(nt_xent(z1, z2)), reference_nt_xent(z1, z2, 0.5), rtol=1e-4)


def test_symmetric_in_views_and_sensitive_to_pairing():
    z1, z2 = pair(8, 16, seed=3)
    paired = as_float(nt_xent(z1, z2, 0.1))
    np.testing.assert_allclose(as_float(nt_xent(z2, z1, 0.1)), paired, rtol=1e-5, atol=1e-6)
    # Reversing the rows of one view breaks the positive pairs: the loss must notice.
    shuffled = as_float(nt_xent(z1, z2[::-1].copy(), 0.1))
    assert shuffled > paired + 0.5


def test_invariant_to_input_scale():
    z1, z2 = pair(8, 16, seed=5)
    base = as_float(nt_xent(z1, z2, 0.1))
    for scale in (1e-3, 7.0, 1e3):
        scaled = as_float(nt_xent(z1 * scale, z2 * scale, 0.1))
        np.testing.assert_allclose(scaled, base, rtol=1e-4, err_msg=f"scale={scale}")
    # Cosine similarity also ignores each row's own norm.
    factors = np.geomspace(0.1, 50.0, 8).astype("float32")[:, None]
    np.testing.assert_allclose(as_float(nt_xent(z1 * factors, z2, 0.1)), base, rtol=1e-4)


def test_perfect_alignment_lower_bound():
    # Identical views, orthogonal images: the loss is log(1 + (2N - 2) e^{-1/T}).
    n, t = 8, 0.1
    z = np.eye(n, 16, dtype="float32")
    expected = np.log(1.0 + (2 * n - 2) * np.exp(-1.0 / t))
    np.testing.assert_allclose(as_float(nt_xent(z, z, t)), expected, rtol=1e-3, atol=1e-7)


def _check_against_rounded_inputs(z1, z2, dtype, temperature=0.05):
    a = ops.convert_to_tensor(z1, dtype=dtype)
    b = ops.convert_to_tensor(z2, dtype=dtype)
    got = nt_xent(a, b, temperature)
    assert keras.backend.standardize_dtype(got.dtype) == "float32", dtype
    value = as_float(got)
    assert np.isfinite(value), dtype
    # Equal to the float64 reference on the rounded inputs.
    a64 = ops.convert_to_numpy(ops.cast(a, "float32")).astype("float64")
    b64 = ops.convert_to_numpy(ops.cast(b, "float32")).astype("float64")
    np.testing.assert_allclose(value, reference_nt_xent(a64, b64, temperature), rtol=1e-3, err_msg=dtype)


def test_low_precision_inputs_are_finite_float32():
    z1, z2 = pair(8, 16, seed=7)
    for dtype in ("float16", "bfloat16"):
        _check_against_rounded_inputs(z1, z2, dtype)


def test_extreme_magnitudes_are_finite_and_correct():
    z1, z2 = pair(8, 16, seed=8)
    z1, z2 = z1 / np.abs(z1).max(), z2 / np.abs(z2).max()
    for dtype, scale in [
        ("float16", 3e4),
        ("float16", 1e-3),
        ("bfloat16", 1e30),
        ("float32", 1e30),
        ("float32", 1e-30),
    ]:
        _check_against_rounded_inputs(z1 * scale, z2 * scale, dtype)


def test_invalid_inputs_raise():
    z = np.ones((1, 4), dtype="float32")
    with pytest.raises(ValueError, match="at least 2") as info:
        nt_xent(z, z, 0.5)
    assert "Received" in str(info.value)
    for shape1, shape2 in [((3, 4), (3, 5)), ((3, 4), (2, 4)), ((3, 4, 1), (3, 4, 1)), ((4,), (4,))]:
        with pytest.raises(ValueError, match="Received"):
            nt_xent(np.ones(shape1, "float32"), np.ones(shape2, "float32"), 0.5)
    z1, z2 = pair(3, 4)
    for temperature in (0.0, -0.1):
        with pytest.raises(ValueError, match="temperature"):
            nt_xent(z1, z2, temperature)


def test_loss_wrapper_matches_function():
    z1, z2 = pair(8, 4, seed=9)
    loss = NTXent(temperature=0.2)
    assert loss.name == "nt_xent"
    np.testing.assert_allclose(as_float(loss(z1, z2)), as_float(nt_xent(z1, z2, 0.2)), rtol=1e-6)
    np.testing.assert_allclose(as_float(loss(z1, z2)), reference_nt_xent(z1, z2, 0.2), rtol=1e-4)
    with pytest.raises(ValueError, match="temperature"):
        NTXent(temperature=0.0)(z1, z2)


def test_loss_wrapper_config_round_trip():
    loss = NTXent(temperature=0.3, name="contrastive")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss), safe_mode=True)
    assert isinstance(restored, NTXent)
    assert restored.temperature == 0.3
    assert restored.name == "contrastive"
    z1, z2 = pair(2, 4, seed=10)
    np.testing.assert_allclose(as_float(restored(z1, z2)), reference_nt_xent(z1, z2, 0.3), rtol=1e-4)


def _gradient_wrt_z1(z1, z2, temperature):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        a = tf.Variable(z1)
        with tf.GradientTape() as tape:
            loss = nt_xent(a, tf.constant(z2), temperature)
        return np.asarray(tape.gradient(loss, a))
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(lambda a: nt_xent(a, z2, temperature))(jax.numpy.asarray(z1)))
    if backend == "torch":
        import torch

        a = torch.tensor(z1, requires_grad=True)
        nt_xent(a, torch.tensor(z2), temperature).backward()
        return a.grad.numpy()
    pytest.skip(f"gradient check written for the tensorflow, jax and torch backends only, not {backend}")


def _numerical_gradient(z1, z2, temperature, eps=1e-5):
    z1 = z1.astype("float64")
    grad = np.zeros_like(z1)
    for index in np.ndindex(*z1.shape):
        up, down = z1.copy(), z1.copy()
        up[index] += eps
        down[index] -= eps
        grad[index] = (reference_nt_xent(up, z2, temperature) - reference_nt_xent(down, z2, temperature)) / (2 * eps)
    return grad


def test_gradient_finite_and_matches_finite_differences():
    z1, z2 = pair(3, 4, seed=11)
    for temperature in (0.1, 0.5):
        grad = _gradient_wrt_z1(z1, z2, temperature)
        assert grad.shape == z1.shape
        assert np.all(np.isfinite(grad))
        assert np.abs(grad).max() > 1e-4
        np.testing.assert_allclose(
            grad, _numerical_gradient(z1, z2, temperature), rtol=2e-3, atol=2e-4, err_msg=f"temperature={temperature}"
        )


def test_zero_row_gives_finite_loss_and_gradient():
    z1 = np.eye(3, 4, dtype="float32")
    z1[2] = 0.0  # a collapsed projection
    assert np.isfinite(as_float(nt_xent(z1, z1.copy(), 0.05)))
    grad = _gradient_wrt_z1(z1, z1.copy(), 0.05)
    assert np.all(np.isfinite(grad))
