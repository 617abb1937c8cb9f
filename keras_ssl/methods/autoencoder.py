"""Autoencoders: plain, denoising (Vincent et al., 2008) and variational (Kingma & Welling, 2014).

An encoder E: R^n -> R^d and a decoder D: R^d -> R^n trained so D(E(x)) is
close to x, on vectors (tabular data, embeddings) or images in [0, 1]. After
pretraining, `method.encoder` is the part to reuse, as with every method.
"""

import keras
import numpy as np
from keras import layers, ops

from keras_ssl.backbones.decoder import mirror_decoder
from keras_ssl.losses.reconstruction import RECONSTRUCTION_LOSSES, kl_divergence, psnr, reconstruction_error
from keras_ssl.methods.method import Method, embedding_std, shapes_match
from keras_ssl.methods.registry import register_method
from keras_ssl.utils import replicas


class ReconstructionMethod(Method):
    """What the reconstruction methods share: input kinds, metrics and `reconstruct`.

    Images give MSE, PSNR and `embedding_std` in the logs; vectors give MSE
    and `embedding_std` (PSNR assumes a [0, 1] range).
    """

    logged_metrics = ("mse", "psnr", "embedding_std")
    warns_on_collapse = False  # reconstructing the input rules out a constant encoder

    def _setup_reconstruction(self, decoder, loss, decoder_input_dim):
        """Sets the input kind, the loss and the decoder (default: the encoder's mirror)."""
        if loss not in RECONSTRUCTION_LOSSES:
            raise ValueError(f"`loss` must be one of {list(RECONSTRUCTION_LOSSES)}. Received: loss={loss!r}")
        in_shape = tuple(self.encoder.input_shape[1:])
        if len(in_shape) not in (1, 3):
            raise ValueError(
                f"{type(self).__name__} needs an encoder of vectors (batch, features) or images "
                f"(batch, height, width, channels). Received an encoder with input shape {(None, *in_shape)}"
            )
        self.input_kind = "vectors" if len(in_shape) == 1 else "images"
        if self.input_kind == "vectors":
            self.trackers = [keras.metrics.Mean(name=n) for n in self.logged_metrics if n != "psnr"]
        self.reconstruction_loss = loss
        if isinstance(decoder, dict):
            decoder = keras.saving.deserialize_keras_object(decoder)
        if decoder is None:
            activation = "sigmoid" if self.input_kind == "images" else None
            decoder = mirror_decoder(self.encoder, decoder_input_dim, output_activation=activation)
        if not isinstance(decoder, keras.Model):
            raise ValueError(f"`decoder` must be a keras.Model. Received: {type(decoder).__name__}")
        if decoder.input_shape[-1] != decoder_input_dim:
            raise ValueError(
                f"The decoder must take {decoder_input_dim}-dimensional codes. Received a decoder with input shape "
                f"{decoder.input_shape}"
            )
        out_shape = tuple(decoder.output_shape[1:])
        if not shapes_match(out_shape, in_shape):
            raise ValueError(
                f"The decoder must output the encoder's input shape {(None, *in_shape)}. Received a decoder with "
                f"output shape {(None, *out_shape)}"
            )
        self.decoder = decoder

    def prepare(self, inputs):
        """The batch as float32: images in [0, 1], vectors as they are."""
        if self.input_kind == "vectors":
            if len(inputs.shape) != 2:
                raise ValueError(f"Expected vectors of rank 2 (batch, features). Received: shape={tuple(inputs.shape)}")
            return ops.cast(inputs, "float32")
        from keras_ssl.augment import to_unit_float

        return to_unit_float(inputs)

    def call(self, inputs, training=False):
        return self.encoder(self.prepare(inputs), training=training)

    def reconstruction_logs(self, target, reconstruction, embeddings):
        logs = {
            "mse": ops.mean(ops.square(ops.cast(reconstruction, "float32") - target)),
            "embedding_std": embedding_std(embeddings),
        }
        if self.input_kind == "images":
            logs["psnr"] = psnr(target, reconstruction)
        return logs

    def reconstruct_batch(self, inputs):
        """`{"inputs", "reconstructions", ...}` tensors for one batch, in inference mode."""
        raise NotImplementedError

    def reconstruct(self, inputs, batch_size=256):
        """Reconstructions of `inputs` (NumPy, in batches) for metrics and figures.

        Returns a dict of NumPy arrays: "inputs" (as float32), "reconstructions",
        and where the method hides part of the input, "corrupted" (what the
        encoder saw) and "mask" (1 where the input was hidden).
        """
        if not self.built:
            self.build((None, *np.shape(inputs)[1:]))
        parts = []
        for start in range(0, len(inputs), batch_size):
            out = self.reconstruct_batch(ops.convert_to_tensor(np.asarray(inputs[start : start + batch_size])))
            parts.append({k: ops.convert_to_numpy(v) for k, v in out.items()})
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


@register_method("autoencoder")
class Autoencoder(ReconstructionMethod):
    """An encoder and a decoder trained to reconstruct their input.

    Args:
        encoder: E, a keras.Model on vectors (e.g. `backbones.MLP`) or images
            (e.g. `backbones.ConvNet(input_shape=(32, 32, 3))`).
        decoder: D, from the encoder's output back to its input shape. Default:
            `backbones.mirror_decoder(encoder)`, with a sigmoid output for images.
        augmenter: optional one-view augmentation applied before encoding
            (the target is the augmented input).
        loss: "mse" (default), "mae", or "bce" (images in [0, 1]).
    """

    def __init__(self, encoder, decoder=None, augmenter=None, loss="mse", **kwargs):
        super().__init__(encoder, augmenter, **kwargs)
        self._setup_reconstruction(decoder, loss, self.feature_dim)

    def corrupt(self, x, training):
        """What the encoder sees; the target is the uncorrupted `x`."""
        return x

    def compute_ssl_loss(self, inputs, training=True):
        x = self.prepare(inputs)
        if self.augmenter is not None:
            x = self.augmenter(x, training=training)
        features = self.encoder(self.corrupt(x, training), training=training)
        reconstruction = self.decoder(features, training=training)
        loss = ops.mean(reconstruction_error(x, reconstruction, self.reconstruction_loss))
        return loss, self.reconstruction_logs(x, reconstruction, features)

    def reconstruct_batch(self, inputs):
        x = self.prepare(inputs)
        return {"inputs": x, "reconstructions": self.decoder(self.encoder(x, training=False), training=False)}

    def get_config(self):
        config = super().get_config()
        config.update(decoder=keras.saving.serialize_keras_object(self.decoder), loss=self.reconstruction_loss)
        return config


@register_method("denoising_autoencoder")
class DenoisingAutoencoder(Autoencoder):
    """Reconstructs clean inputs from corrupted ones (Vincent et al., 2008).

    "Partially destroyed inputs" are made on the device in the train step:

    - noise="gaussian": add N(0, noise_stddev^2) noise (clipped to [0, 1] for images);
    - noise="masking": set a random `mask_rate` of the entries to 0 (for
      images, whole pixels, all channels at once).

    Other arguments as for `Autoencoder`; `seed` seeds the noise.
    """

    def __init__(
        self, encoder, decoder=None, noise="gaussian", noise_stddev=0.1, mask_rate=0.25, loss="mse", seed=None, **kwargs
    ):
        super().__init__(encoder, decoder, loss=loss, **kwargs)
        if noise not in ("gaussian", "masking"):
            raise ValueError(f"`noise` must be 'gaussian' or 'masking'. Received: noise={noise!r}")
        if noise_stddev < 0:
            raise ValueError(f"`noise_stddev` must be >= 0. Received: noise_stddev={noise_stddev}")
        if not 0 <= mask_rate < 1:
            raise ValueError(f"`mask_rate` must be in [0, 1). Received: mask_rate={mask_rate}")
        self.noise, self.noise_stddev, self.mask_rate, self.seed = noise, float(noise_stddev), float(mask_rate), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def corrupt(self, x, training=True):
        shape = ops.shape(x)
        if self.noise == "gaussian":
            noise = replicas.per_sample(lambda s: keras.random.normal(s, seed=self.seed_generator), shape)
            noisy = x + self.noise_stddev * noise
            return ops.clip(noisy, 0.0, 1.0) if self.input_kind == "images" else noisy
        mask_shape = (*shape[:-1], 1) if self.input_kind == "images" else shape
        keep = replicas.per_sample(lambda s: keras.random.uniform(s, seed=self.seed_generator), mask_shape)
        keep = keep >= self.mask_rate
        return x * ops.cast(keep, x.dtype)

    def reconstruct_batch(self, inputs):
        x = self.prepare(inputs)
        corrupted = self.corrupt(x)
        reconstruction = self.decoder(self.encoder(corrupted, training=False), training=False)
        return {"inputs": x, "corrupted": corrupted, "reconstructions": reconstruction}

    def get_config(self):
        config = super().get_config()
        config.update(noise=self.noise, noise_stddev=self.noise_stddev, mask_rate=self.mask_rate, seed=self.seed)
        return config


@register_method("vae")
class VariationalAutoencoder(ReconstructionMethod):
    """A VAE: the encoder's features give a Gaussian q(z|x); the decoder maps samples back.

    Loss per sample: the reconstruction error summed over the input's
    elements plus `beta` times KL(q(z|x) || N(0, I)) in closed form
    (`losses.kl_divergence`); beta > 1 is the beta-VAE of Higgins et al.
    (2017). z = mean + exp(log_var / 2) * eps (the reparameterisation trick).

    Args:
        encoder: the feature extractor; two Dense heads on its output give the
            mean and log-variance of z.
        decoder: from `latent_dim` codes to the input shape (default: the
            encoder's mirror).
        latent_dim: size of z (default: the encoder's feature size).
        beta: weight of the KL term.
        loss: "mse" (a Gaussian likelihood up to scale) or "bce" (Bernoulli,
            for images in [0, 1]); "mae" is allowed too.
        seed: seeds the reparameterisation noise.

    `encode(x)` gives (mean, log_var); `sample(n)` decodes draws from N(0, I).
    """

    logged_metrics = ("mse", "psnr", "kl", "embedding_std")

    def __init__(
        self, encoder, decoder=None, latent_dim=None, beta=1.0, loss="mse", seed=None, augmenter=None, **kwargs
    ):
        super().__init__(encoder, augmenter, **kwargs)
        if beta < 0:
            raise ValueError(f"`beta` must be >= 0. Received: beta={beta}")
        self.latent_dim = int(latent_dim or self.feature_dim)
        self.beta, self.seed = float(beta), seed
        self.z_mean = layers.Dense(self.latent_dim, name="z_mean")
        self.z_log_var = layers.Dense(self.latent_dim, kernel_initializer="zeros", name="z_log_var")
        self._setup_reconstruction(decoder, loss, self.latent_dim)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.build_heads(self.feature_dim)

    def build_heads(self, feature_dim):
        self.z_mean.build((None, feature_dim))
        self.z_log_var.build((None, feature_dim))

    def _posterior(self, x, training):
        h = self.encoder(x, training=training)
        # Clipped so exp() stays finite early in training.
        return self.z_mean(h), ops.clip(self.z_log_var(h), -20.0, 20.0)

    def encode(self, inputs):
        """(mean, log_var) of q(z|x) for a batch."""
        return self._posterior(self.prepare(inputs), training=False)

    def compute_ssl_loss(self, inputs, training=True):
        x = self.prepare(inputs)
        if self.augmenter is not None:
            x = self.augmenter(x, training=training)
        mean, log_var = self._posterior(x, training)
        mean, log_var = ops.cast(mean, "float32"), ops.cast(log_var, "float32")  # exp() in float32 (mixed precision)
        epsilon = replicas.per_sample(lambda s: keras.random.normal(s, seed=self.seed_generator), ops.shape(mean))
        z = mean + ops.exp(0.5 * log_var) * epsilon
        reconstruction = self.decoder(z, training=training)
        error = reconstruction_error(x, reconstruction, self.reconstruction_loss)
        per_sample = ops.sum(ops.reshape(error, (ops.shape(error)[0], -1)), axis=1)
        kl = ops.mean(kl_divergence(mean, log_var))
        logs = self.reconstruction_logs(x, reconstruction, mean)
        logs["kl"] = kl
        return ops.mean(per_sample) + self.beta * kl, logs

    def reconstruct_batch(self, inputs):
        x = self.prepare(inputs)
        mean, _ = self._posterior(x, training=False)
        return {"inputs": x, "reconstructions": self.decoder(mean, training=False)}

    def sample(self, num_samples, seed=None):
        """Decodes `num_samples` draws of z ~ N(0, I); returns a NumPy array."""
        z = keras.random.normal((int(num_samples), self.latent_dim), seed=seed)
        return ops.convert_to_numpy(self.decoder(z, training=False))

    def get_config(self):
        config = super().get_config()
        config.update(
            decoder=keras.saving.serialize_keras_object(self.decoder),
            latent_dim=self.latent_dim,
            beta=self.beta,
            loss=self.reconstruction_loss,
            seed=self.seed,
        )
        return config
