"""PSNR on a split and the reconstruction PNG grid."""

import numpy as np
import pytest

from keras_ssl import backbones, evaluation, methods
from keras_ssl.testing import cifar10_sample


def test_reconstruction_psnr_matches_the_per_image_formula():
    (x, _), _ = cifar10_sample(num_train=6)
    method = methods.Autoencoder(backbones.ConvNet((4, 8), input_shape=(32, 32, 3)))
    out = method.reconstruct(x)
    mse = np.mean((out["reconstructions"] - out["inputs"]) ** 2, axis=(1, 2, 3))
    assert evaluation.reconstruction_psnr(method, x, batch_size=4) == pytest.approx(
        np.mean(10 * np.log10(1 / mse)), rel=1e-4
    )


def test_the_grid_is_a_png_with_a_row_per_stage(tmp_path):
    import matplotlib.image

    (x, _), _ = cifar10_sample(num_train=4)
    method = methods.DenoisingAutoencoder(backbones.ConvNet((4, 8), input_shape=(32, 32, 3)), seed=0)
    path = evaluation.save_reconstruction_grid(method, x, tmp_path / "grid" / "dae.png", num_images=4)
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[1] > image.shape[0]  # 4 columns, 3 rows
    assert not list((tmp_path / "grid").glob("*.partial*"))


def test_the_callback_writes_one_grid_per_epoch(tmp_path):
    (x, _), _ = cifar10_sample(num_train=8)
    method = methods.Autoencoder(backbones.ConvNet((4,), input_shape=(32, 32, 3)))
    callback = evaluation.ReconstructionGrid(x, tmp_path, num_images=2)
    method.fit(x, batch_size=4, epochs=2, verbose=0, callbacks=[callback])
    assert sorted(p.name for p in tmp_path.glob("*.png")) == ["epoch_001.png", "epoch_002.png"]


def test_a_contrastive_method_is_refused():
    with pytest.raises(ValueError, match="Expected a reconstruction method.*Received: SimCLR"):
        evaluation.reconstruction_psnr(methods.SimCLR(backbones.ConvNet((4,))), np.zeros((1, 8, 8, 3), "uint8"))
