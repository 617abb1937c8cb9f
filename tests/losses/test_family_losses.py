"""InfoNCE, negative cosine, Barlow Twins and VICReg against slow NumPy versions
written from the papers' pseudocode, over grids of batch size, dimension and temperature."""

import itertools

import keras
import numpy as np
import pytest

from keras_ssl import losses

RNG = np.random.default_rng(0)


def normalize(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def info_nce_reference(q, k, negatives, t):
    q, k = normalize(q), normalize(k)
    total = 0.0
    for i in range(len(q)):
        negs = normalize(negatives) if negatives is not None else np.delete(k, i, axis=0)
        positive = np.exp(q[i] @ k[i] / t)
        total += -np.log(positive / (positive + np.sum(np.exp(negs @ q[i] / t))))
    return total / len(q)


def barlow_reference(z1, z2, lam):
    n, d = z1.shape
    a = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + 1e-5)
    b = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + 1e-5)
    c = np.zeros((d, d))
    for i in range(d):
        for j in range(d):
            c[i, j] = np.sum(a[:, i] * b[:, j]) / n
    return sum((1 - c[i, i]) ** 2 for i in range(d)) + lam * sum(
        c[i, j] ** 2 for i in range(d) for j in range(d) if i != j
    )


def vicreg_reference(z1, z2, wi, wv, wc):
    n, d = z1.shape
    invariance = np.mean((z1 - z2) ** 2)
    variance = covariance = 0.0
    for z in (z1, z2):
        z = z - z.mean(0)
        std = np.sqrt(z.var(0, ddof=1) + 1e-4)
        variance += np.mean(np.maximum(0, 1 - std)) / 2
        cov = z.T @ z / (n - 1)
        covariance += (np.sum(cov**2) - np.sum(np.diag(cov) ** 2)) / d
    return wi * invariance + wv * variance + wc * covariance


GRID = list(itertools.product([2, 5, 16], [3, 8]))


@pytest.mark.parametrize("n, d", GRID)
@pytest.mark.parametrize("t", [0.05, 0.2, 1.0])
@pytest.mark.parametrize("num_negatives", [None, 7])
def test_info_nce_matches_reference(n, d, t, num_negatives):
    q, k = RNG.normal(size=(n, d)).astype("float32"), RNG.normal(size=(n, d)).astype("float32")
    negatives = None if num_negatives is None else RNG.normal(size=(num_negatives, d)).astype("float32")
    got = float(losses.info_nce(q, k, negatives, temperature=t))
    np.testing.assert_allclose(got, info_nce_reference(q, k, negatives, t), rtol=2e-4)


@pytest.mark.parametrize("n, d", GRID)
def test_negative_cosine_matches_reference(n, d):
    p, z = RNG.normal(size=(n, d)).astype("float32"), RNG.normal(size=(n, d)).astype("float32")
    expected = -np.mean(np.sum(normalize(p) * normalize(z), axis=1))
    np.testing.assert_allclose(float(losses.negative_cosine_similarity(p, z)), expected, rtol=1e-5, atol=1e-6)
    assert float(losses.negative_cosine_similarity(p, p)) == pytest.approx(-1.0, abs=1e-5)


@pytest.mark.parametrize("n, d", GRID)
@pytest.mark.parametrize("lam", [0.005, 0.1])
def test_barlow_twins_matches_reference(n, d, lam):
    z1, z2 = RNG.normal(size=(n, d)).astype("float32"), RNG.normal(size=(n, d)).astype("float32")
    np.testing.assert_allclose(
        float(losses.barlow_twins(z1, z2, lambda_=lam)), barlow_reference(z1, z2, lam), rtol=2e-4, atol=1e-4
    )


@pytest.mark.parametrize("n, d", GRID)
@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (1.0, 0.0, 5.0)])
def test_vicreg_matches_reference(n, d, weights):
    z1, z2 = RNG.normal(size=(n, d)).astype("float32"), 0.3 * RNG.normal(size=(n, d)).astype("float32")
    got = float(losses.vicreg(z1, z2, *weights))
    np.testing.assert_allclose(got, vicreg_reference(z1, z2, *weights), rtol=2e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_losses_stay_finite_in_half_precision_at_small_temperature(dtype):
    q = keras.ops.cast(RNG.normal(size=(8, 16)) * 30, dtype)
    k = keras.ops.cast(RNG.normal(size=(8, 16)) * 30, dtype)
    values = [
        losses.info_nce(q, k, temperature=0.01),
        losses.info_nce(q, k, q, temperature=0.01),
        losses.negative_cosine_similarity(q, k),
        losses.barlow_twins(q, k),
        losses.vicreg(q, k),
    ]
    for value in values:
        assert keras.backend.standardize_dtype(value.dtype) == "float32"
        assert np.isfinite(float(value))


def test_bad_shapes_are_refused():
    a, b = np.zeros((4, 3), "float32"), np.zeros((4, 5), "float32")
    for loss in (losses.info_nce, losses.negative_cosine_similarity, losses.barlow_twins, losses.vicreg):
        with pytest.raises(ValueError, match="Received"):
            loss(a, b)
    with pytest.raises(ValueError, match="negative_keys"):
        losses.info_nce(a, a, np.zeros((6, 2), "float32"))
    with pytest.raises(ValueError, match="at least 2"):
        losses.barlow_twins(a[:1], a[:1])
    with pytest.raises(ValueError, match="temperature"):
        losses.info_nce(a, a, temperature=0.0)


def dino_reference(students, teachers, center, ts, tt):
    def softmax(x):
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    total, terms = 0.0, 0
    for i, t in enumerate(teachers):
        target = softmax((t - center) / tt)
        for j, s in enumerate(students):
            if i != j:
                total += np.mean(-np.sum(target * np.log(softmax(s / ts)), axis=1))
                terms += 1
    return total / terms


@pytest.mark.parametrize("n, k", [(2, 4), (6, 16)])
@pytest.mark.parametrize("num_local", [0, 3])
@pytest.mark.parametrize("temperatures", [(0.1, 0.04), (0.2, 0.07)])
def test_dino_loss_matches_reference(n, k, num_local, temperatures):
    students = [RNG.normal(size=(n, k)).astype("float32") for _ in range(2 + num_local)]
    teachers = [RNG.normal(size=(n, k)).astype("float32") for _ in range(2)]
    center = RNG.normal(size=(k,)).astype("float32") * 0.1
    got = float(losses.dino_loss(students, teachers, center, *temperatures))
    np.testing.assert_allclose(got, dino_reference(students, teachers, center, *temperatures), rtol=2e-4)


def test_dino_loss_needs_two_student_views():
    one = [np.zeros((2, 3), "float32")]
    with pytest.raises(ValueError, match="at least 2 student views"):
        losses.dino_loss(one, one, np.zeros(3, "float32"))
