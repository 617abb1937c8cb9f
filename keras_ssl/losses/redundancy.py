"""Redundancy-reduction losses: Barlow Twins and VICReg."""

from keras import ops


def _check_pair(z1, z2):
    if tuple(z1.shape) != tuple(z2.shape) or len(z1.shape) != 2:
        raise ValueError(
            f"Expected two (batch, dim) tensors of the same shape. Received: {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    if z1.shape[0] is not None and z1.shape[0] < 2:
        raise ValueError(f"Batch statistics need at least 2 samples. Received: batch size {z1.shape[0]}")


def barlow_twins(z1, z2, lambda_=0.005, eps=1e-5):
    """Barlow Twins (Zbontar et al., 2021), as in the paper's reference code.

    Formula:
        z_hat = (z - mean_batch(z)) / sqrt(var_batch(z) + eps)   # BatchNorm1d(affine=False), biased var
        c = z1_hat^T z2_hat / N                                  # (D, D) cross-correlation
        loss = sum_i (1 - c_ii)^2 + lambda_ * sum_{i != j} c_ij^2
    """
    _check_pair(z1, z2)
    z1 = ops.cast(z1, "float32")
    z2 = ops.cast(z2, "float32")
    n = ops.cast(ops.shape(z1)[0], "float32")

    def standardize(z):
        mean = ops.mean(z, axis=0, keepdims=True)
        var = ops.mean(ops.square(z - mean), axis=0, keepdims=True)
        return (z - mean) / ops.sqrt(var + eps)

    c = ops.matmul(ops.transpose(standardize(z1)), standardize(z2)) / n  # (D, D)
    diagonal = ops.diagonal(c)
    on_diagonal = ops.sum(ops.square(1.0 - diagonal))
    off_diagonal = ops.sum(ops.square(c)) - ops.sum(ops.square(diagonal))
    return on_diagonal + lambda_ * off_diagonal


def vicreg(z1, z2, invariance_weight=25.0, variance_weight=25.0, covariance_weight=1.0, eps=1e-4):
    """VICReg (Bardes et al., 2022), as in the paper's reference code.

    Formula:
        invariance = mean((z1 - z2)^2)
        variance   = sum over branches of mean_d relu(1 - sqrt(var_unbiased(z_d) + eps)) / 2
        covariance = sum over branches of sum_{i != j} cov(z)_ij^2 / D,  cov = (z - mean)^T (z - mean) / (N - 1)
        loss = invariance_weight * invariance + variance_weight * variance + covariance_weight * covariance
    """
    _check_pair(z1, z2)
    z1 = ops.cast(z1, "float32")
    z2 = ops.cast(z2, "float32")
    n = ops.cast(ops.shape(z1)[0], "float32")
    dim = ops.cast(ops.shape(z1)[1], "float32")
    invariance = ops.mean(ops.square(z1 - z2))

    def variance_and_covariance(z):
        z = z - ops.mean(z, axis=0, keepdims=True)
        std = ops.sqrt(ops.sum(ops.square(z), axis=0) / (n - 1.0) + eps)
        cov = ops.matmul(ops.transpose(z), z) / (n - 1.0)
        off = ops.sum(ops.square(cov)) - ops.sum(ops.square(ops.diagonal(cov)))
        return ops.mean(ops.relu(1.0 - std)) / 2.0, off / dim

    v1, c1 = variance_and_covariance(z1)
    v2, c2 = variance_and_covariance(z2)
    return invariance_weight * invariance + variance_weight * (v1 + v2) + covariance_weight * (c1 + c2)
