"""Autoencoder, DenoisingAutoencoder and VariationalAutoencoder on real images and vectors."""

import keras
import numpy as np
import pytest

from keras_ssl import backbones, losses, methods
from keras_ssl.testing import cifar10_sample


def conv_encoder(size=32):
    return backbones.ConvNet(filters=(4, 8), input_shape=(size, size, 3))


def mse_before_and_after(method, x, epochs=6, batch_size=16):
    """Mean reconstruction MSE of the first and of the last training epoch."""
    method.compile(optimizer=keras.optimizers.Adam(3e-3))
    errors = method.fit(x, batch_size=batch_size, epochs=epochs, verbose=0).history["mse"]
    return errors[0], errors[-1]


@pytest.mark.parametrize(
    "make",
    [
        lambda: methods.Autoencoder(conv_encoder()),
        lambda: methods.DenoisingAutoencoder(conv_encoder(), noise="gaussian", seed=1),
        lambda: methods.DenoisingAutoencoder(conv_encoder(), noise="masking", seed=1),
        lambda: methods.VariationalAutoencoder(conv_encoder(), latent_dim=8, loss="bce", seed=1),
    ],
    ids=["autoencoder", "denoising_gaussian", "denoising_masking", "vae"],
)
def test_a_few_steps_reduce_the_reconstruction_loss_on_cifar(make):
    (x, _), _ = cifar10_sample(num_train=64)
    before, after = mse_before_and_after(make(), x.astype("float32") / 255.0)
    assert after < 0.9 * before


def test_the_mirror_decoder_inverts_the_encoder_shapes():
    for encoder in (conv_encoder(), backbones.ResNet18(width=0.125, input_shape=(32, 32, 3))):
        decoder = backbones.mirror_decoder(encoder, output_activation="sigmoid")
        assert decoder.input_shape == (None, encoder.output_shape[-1])
        assert decoder.output_shape == (None, 32, 32, 3)
    mlp = backbones.MLP(10, hidden_dims=(32, 16), output_dim=4)
    decoder = backbones.mirror_decoder(mlp)
    assert [layer.units for layer in decoder.layers if isinstance(layer, keras.layers.Dense)] == [16, 32, 10]


def test_reconstruct_returns_inputs_and_reconstructions_of_the_same_shape():
    (x, _), _ = cifar10_sample(num_train=5)
    method = methods.DenoisingAutoencoder(conv_encoder(), noise="masking", mask_rate=0.5, seed=0)
    out = method.reconstruct(x, batch_size=2)
    assert set(out) == {"inputs", "corrupted", "reconstructions"}
    for value in out.values():
        assert value.shape == (5, 32, 32, 3)
    np.testing.assert_allclose(out["inputs"], x / 255.0, atol=1e-6)
    assert out["reconstructions"].min() >= 0.0 and out["reconstructions"].max() <= 1.0  # sigmoid output
    # Masking noise zeroes whole pixels, about half of them.
    zeroed = np.all(out["corrupted"] == 0, axis=-1) & np.any(out["inputs"] > 0, axis=-1)
    assert 0.35 < zeroed.mean() < 0.65


def test_gaussian_noise_has_the_requested_spread():
    method = methods.DenoisingAutoencoder(conv_encoder(), noise_stddev=0.05, seed=0)
    x = keras.ops.full((8, 32, 32, 3), 0.5)
    noise = keras.ops.convert_to_numpy(method.corrupt(x)) - 0.5
    assert abs(noise.std() - 0.05) < 0.005
    assert abs(noise.mean()) < 0.005


def test_vectors_train_and_log_mse_without_psnr():
    x = np.random.default_rng(0).normal(size=(128, 12)).astype("float32")
    method = methods.Autoencoder(backbones.MLP(12, hidden_dims=(32,), output_dim=6))
    before, after = mse_before_and_after(method, x)
    assert after < 0.8 * before
    history = method.fit(x, batch_size=32, epochs=1, verbose=0).history
    assert "mse" in history and "psnr" not in history
    assert method.predict(x[:3], verbose=0).shape == (3, 6)


def test_the_kl_term_matches_its_closed_form_and_a_monte_carlo_estimate():
    rng = np.random.default_rng(0)
    mean = rng.normal(size=(4, 3)).astype("float32")
    log_var = rng.normal(scale=0.5, size=(4, 3)).astype("float32")
    kl = keras.ops.convert_to_numpy(losses.kl_divergence(mean, log_var))
    var = np.exp(log_var)
    closed = 0.5 * np.sum(var + mean**2 - 1.0 - log_var, axis=1)  # KL(N(m, v) || N(0, 1)) per dim, summed
    np.testing.assert_allclose(kl, closed, rtol=1e-5)
    # E_q[log q(z) - log p(z)] from samples.
    z = mean + np.sqrt(var) * rng.normal(size=(200_000, 4, 3))
    log_q = -0.5 * (np.log(2 * np.pi) + log_var + (z - mean) ** 2 / var)
    log_p = -0.5 * (np.log(2 * np.pi) + z**2)
    np.testing.assert_allclose(kl, (log_q - log_p).sum(-1).mean(0), rtol=0.02, atol=0.01)


def test_the_vae_loss_is_reconstruction_plus_beta_kl():
    (x, _), _ = cifar10_sample(num_train=4)
    method = methods.VariationalAutoencoder(conv_encoder(), latent_dim=4, beta=2.5, loss="bce", seed=0)
    loss, logs = method.compute_ssl_loss(keras.ops.convert_to_tensor(x), training=False)
    loss, kl = float(loss), float(logs["kl"])
    method.beta = 0.0
    reconstruction_only = float(method.compute_ssl_loss(keras.ops.convert_to_tensor(x), training=False)[0])
    assert kl > 0
    # Fresh noise per call: the reconstruction term differs a little between the two calls.
    assert loss == pytest.approx(reconstruction_only + 2.5 * kl, rel=0.02)


def test_vae_samples_and_encodings_have_the_right_shapes():
    method = methods.VariationalAutoencoder(conv_encoder(), latent_dim=5)
    samples = method.sample(3, seed=0)
    assert samples.shape == (3, 32, 32, 3) and np.all((samples >= 0) & (samples <= 1))
    mean, log_var = method.encode(keras.ops.zeros((2, 32, 32, 3)))
    assert tuple(mean.shape) == tuple(log_var.shape) == (2, 5)


def test_psnr_of_known_errors():
    x = np.zeros((2, 4, 4, 1), "float32")
    y = x + np.array([0.1, 0.01], "float32")[:, None, None, None]  # MSE 1e-2 and 1e-4: 20 and 40 dB
    assert float(losses.psnr(x, y)) == pytest.approx(30.0, abs=1e-3)


def test_bad_input_gets_clear_errors():
    (x, _), _ = cifar10_sample(num_train=8)
    with pytest.raises(
        ValueError, match=r"takes inputs of shape \(None, 16, 16, 3\).*Received inputs of shape \(None, 32, 32, 3\)"
    ):
        methods.Autoencoder(conv_encoder(16)).fit(x, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match=r"input size.*Received an encoder with input shape \(None, None, 3\)"):
        methods.Autoencoder(backbones.ConvNet((4,), input_shape=(None, None, 3)))
    with pytest.raises(ValueError, match="`loss` must be one of.*Received: loss='l3'"):
        methods.Autoencoder(conv_encoder(), loss="l3")
    wrong = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16 * 16 * 3), keras.layers.Reshape((16, 16, 3))])
    with pytest.raises(ValueError, match=r"output the encoder's input shape \(None, 32, 32, 3\).*\(None, 16, 16, 3\)"):
        methods.Autoencoder(conv_encoder(), decoder=wrong)
    with pytest.raises(ValueError, match="`noise` must be"):
        methods.DenoisingAutoencoder(conv_encoder(), noise="salt")
    with pytest.raises(ValueError, match=r"`mask_rate` must be in \[0, 1\)"):
        methods.DenoisingAutoencoder(conv_encoder(), noise="masking", mask_rate=1.0)
    with pytest.raises(ValueError, match="`beta` must be >= 0"):
        methods.VariationalAutoencoder(conv_encoder(), beta=-1)
    vectors = methods.Autoencoder(backbones.MLP(4, (8,), 2))
    with pytest.raises(ValueError, match="NaN"):
        vectors.fit(np.array([[0, 1, np.nan, 2]] * 4, "float32"), verbose=0)
    with pytest.raises(ValueError, match=r"rank 2 \(num_rows, features\). Received: shape=\(4, 2, 2\)"):
        vectors.fit(np.zeros((4, 2, 2), "float32"), verbose=0)
    with pytest.raises(ValueError, match=r"takes inputs of shape \(None, 4\). Received inputs of shape \(None, 5\)"):
        vectors.fit(np.zeros((4, 5), "float32"), verbose=0)
