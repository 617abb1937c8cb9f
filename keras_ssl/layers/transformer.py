"""Transformer building blocks shared by the ViT and the text encoder.

Each is a registered Keras layer with a full config, so encoders built from
them rebuild under `safe_mode` and export like every other encoder. Patch
tokens are plain sequences here: MAE calls the same layers on the visible
subset of a ViT's tokens.
"""

import keras
import numpy as np
from keras import layers, ops

from keras_ssl.utils.checks import assert_token_ids_in_range


def patchify(images, patch_size):
    """(B, H, W, C) images -> (B, (H/p)*(W/p), p*p*C) patches in row-major order."""
    height, width, channels = images.shape[1], images.shape[2], images.shape[3]
    gh, gw = height // patch_size, width // patch_size
    x = ops.reshape(images, (-1, gh, patch_size, gw, patch_size, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, gh * gw, patch_size * patch_size * channels))


def unpatchify(patches, patch_size, grid, channels):
    """Inverse of `patchify`: (B, gh*gw, p*p*C) -> (B, gh*p, gw*p, C)."""
    gh, gw = grid
    x = ops.reshape(patches, (-1, gh, gw, patch_size, patch_size, channels))
    x = ops.transpose(x, (0, 1, 3, 2, 4, 5))
    return ops.reshape(x, (-1, gh * patch_size, gw * patch_size, channels))


def sincos_position_embedding(grid, dim):
    """Fixed 2-D sine-cosine positions (MAE's `get_2d_sincos_pos_embed`), (gh*gw, dim).

    Half of the channels encode the row, half the column; each half is
    sin/cos of the coordinate at geometrically spaced frequencies.
    """
    if dim % 4:
        raise ValueError(f"2-D sine-cosine positions need a dimension divisible by 4. Received: dim={dim}")
    gh, gw = grid
    rows, cols = np.meshgrid(np.arange(gh, dtype="float64"), np.arange(gw, dtype="float64"), indexing="ij")
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype="float64") / (dim // 4))

    def encode(coords):
        angles = coords.reshape(-1)[:, None] * omega[None, :]
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)

    return np.concatenate([encode(rows), encode(cols)], axis=1).astype("float32")


@keras.saving.register_keras_serializable(package="keras_ssl")
class PatchEmbedding(layers.Layer):
    """Splits images into non-overlapping `patch_size` squares and embeds each linearly."""

    def __init__(self, patch_size, dim, **kwargs):
        super().__init__(**kwargs)
        self.patch_size, self.dim = int(patch_size), int(dim)
        self.projection = layers.Conv2D(self.dim, self.patch_size, strides=self.patch_size, name="projection")

    def build(self, input_shape):
        self.projection.build(input_shape)

    def call(self, images):
        x = self.projection(images)
        return ops.reshape(x, (-1, x.shape[1] * x.shape[2], self.dim))

    def compute_output_shape(self, input_shape):
        h, w = input_shape[1], input_shape[2]
        n = None if h is None or w is None else (h // self.patch_size) * (w // self.patch_size)
        return (input_shape[0], n, self.dim)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size, "dim": self.dim}


@keras.saving.register_keras_serializable(package="keras_ssl")
class PositionEmbedding(layers.Layer):
    """Adds a position vector to each token: learned, or fixed 2-D sine-cosine.

    Args:
        num_positions: sequence length (for "sincos": `grid` gives it).
        kind: "learned" (trainable, N(0, 0.02) init) or "sincos" (fixed).
        grid: (rows, cols) of patches, needed by "sincos".
    """

    def __init__(self, num_positions=None, kind="learned", grid=None, **kwargs):
        super().__init__(**kwargs)
        if kind not in ("learned", "sincos"):
            raise ValueError(f"`kind` must be 'learned' or 'sincos'. Received: kind={kind!r}")
        if kind == "sincos" and grid is None:
            raise ValueError("Sine-cosine positions need the patch `grid` (rows, cols).")
        self.grid = None if grid is None else tuple(int(g) for g in grid)
        self.num_positions = int(num_positions or self.grid[0] * self.grid[1])
        self.kind = kind

    def build(self, input_shape):
        dim = input_shape[-1]
        if self.kind == "sincos":
            table = sincos_position_embedding(self.grid, dim)
            initializer = keras.initializers.Constant(table)
        else:
            initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        self.embeddings = self.add_weight(
            shape=(self.num_positions, dim),
            initializer=initializer,
            trainable=self.kind == "learned",
            name="embeddings",
        )

    def call(self, tokens):
        length = tokens.shape[1]
        length = length if isinstance(length, int) else None  # JAX traces open lengths as symbolic dimensions
        if length is not None and length > self.num_positions:
            raise ValueError(
                f"Expected sequences of at most {self.num_positions} tokens (this encoder's maximum). "
                f"Received: {length} tokens"
            )
        positions = ops.convert_to_tensor(self.embeddings)
        if length is None:  # known only when run (TensorFlow graphs)
            positions = ops.slice(positions, (0, 0), (ops.shape(tokens)[1], positions.shape[1]))
        elif length < self.num_positions:
            positions = positions[:length]
        return tokens + ops.cast(positions, tokens.dtype)[None]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "num_positions": self.num_positions, "kind": self.kind, "grid": self.grid}


@keras.saving.register_keras_serializable(package="keras_ssl")
class TokenIdCheck(layers.Layer):
    """Passes token ids through, raising when one lies outside `[0, vocabulary_size)`.

    Text encoders put it before their embedding lookup, which would otherwise
    return NaN (JAX) or fail deep inside TensorFlow on an id made with another
    tokenizer. It runs eagerly, in TensorFlow graphs and under JAX's jit
    (see `keras_ssl.utils.checks.assert_token_ids_in_range`, which also says
    what it costs and where XLA drops it). It has no weights.
    """

    def __init__(self, vocabulary_size, **kwargs):
        super().__init__(**kwargs)
        if isinstance(vocabulary_size, bool) or not isinstance(vocabulary_size, (int, np.integer)):
            raise ValueError(f"`vocabulary_size` must be an int. Received: vocabulary_size={vocabulary_size!r}")
        if vocabulary_size < 1:
            raise ValueError(f"`vocabulary_size` must be positive. Received: vocabulary_size={vocabulary_size}")
        self.vocabulary_size = int(vocabulary_size)

    def call(self, token_ids):
        return assert_token_ids_in_range(token_ids, self.vocabulary_size)

    def compute_output_spec(self, token_ids):
        return keras.KerasTensor(token_ids.shape, dtype=token_ids.dtype)

    def get_config(self):
        return {**super().get_config(), "vocabulary_size": self.vocabulary_size}


@keras.saving.register_keras_serializable(package="keras_ssl")
class PaddingMask(layers.Layer):
    """True for real tokens, False for padding (`pad_id`) in a batch of token ids."""

    def __init__(self, pad_id=0, **kwargs):
        super().__init__(**kwargs)
        self.pad_id = int(pad_id)

    def call(self, token_ids):
        return ops.not_equal(token_ids, self.pad_id)

    def compute_output_spec(self, token_ids):
        return keras.KerasTensor(token_ids.shape, dtype="bool")

    def get_config(self):
        return {**super().get_config(), "pad_id": self.pad_id}


@keras.saving.register_keras_serializable(package="keras_ssl")
class ClassToken(layers.Layer):
    """Prepends one learned token (ViT's [class] token) to every sequence."""

    def build(self, input_shape):
        self.token = self.add_weight(
            shape=(1, 1, input_shape[-1]), initializer=keras.initializers.TruncatedNormal(stddev=0.02), name="token"
        )

    def call(self, tokens):
        # zeros_like of one token gives the batch size on every backend.
        first = ops.zeros_like(tokens[:, :1]) + ops.cast(self.token, tokens.dtype)
        return ops.concatenate([first, tokens], axis=1)

    def compute_output_shape(self, input_shape):
        n = input_shape[1]
        return (input_shape[0], None if n is None else n + 1, input_shape[2])


@keras.saving.register_keras_serializable(package="keras_ssl")
class TokenPooling(layers.Layer):
    """A sequence's summary vector: its first ([class]) token, or the mean of its tokens.

    With a padding mask (1 = real token), "mean" averages real tokens only.
    """

    def __init__(self, mode="cls", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("cls", "mean"):
            raise ValueError(f"`mode` must be 'cls' or 'mean'. Received: mode={mode!r}")
        self.mode = mode
        self.supports_masking = True  # takes a Keras mask (e.g. from Embedding(mask_zero=True)) and ends it

    def compute_mask(self, tokens, mask=None):
        return None

    def call(self, tokens, padding_mask=None):
        if self.mode == "cls":
            return tokens[:, 0]
        if padding_mask is None:
            return ops.mean(tokens, axis=1)
        weights = ops.cast(padding_mask, tokens.dtype)[..., None]
        return ops.sum(tokens * weights, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="keras_ssl")
class TransformerBlock(layers.Layer):
    """Self-attention then an MLP, each with a residual; pre-LN (ViT) or post-LN (BERT).

    Args:
        num_heads: attention heads; the token dimension must divide by it.
        mlp_dim: hidden units of the MLP (usually 4x the token dimension).
        dropout: dropout on attention weights and after each sublayer.
        mlp_hidden_dropout: also drop the MLP's hidden units, as ViT does;
            BERT does not (its encoder passes False).
        norm_first: LayerNorm before each sublayer (pre-LN, ViT/MAE) or after
            the residual sum (post-LN, the original BERT).
        activation: the MLP's activation.
        epsilon: LayerNorm epsilon (1e-6 as in ViT; BERT uses 1e-12).

    Call with `padding_mask` (B, L), 1 for real tokens, to keep attention off
    padding.
    """

    def __init__(
        self,
        num_heads,
        mlp_dim,
        dropout=0.0,
        norm_first=True,
        activation="gelu",
        epsilon=1e-6,
        mlp_hidden_dropout=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads, self.mlp_dim = int(num_heads), int(mlp_dim)
        self.mlp_hidden_dropout = bool(mlp_hidden_dropout)
        self.dropout, self.norm_first, self.activation, self.epsilon = (
            float(dropout),
            bool(norm_first),
            activation,
            float(epsilon),
        )

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim % self.num_heads:
            raise ValueError(f"Token dimension {dim} does not divide by num_heads={self.num_heads}.")
        self.attention = layers.MultiHeadAttention(
            self.num_heads, dim // self.num_heads, dropout=self.dropout, name="attention"
        )
        self.attention.build(input_shape, input_shape)
        self.norm1 = layers.LayerNormalization(epsilon=self.epsilon, name="norm1")
        self.norm2 = layers.LayerNormalization(epsilon=self.epsilon, name="norm2")
        self.norm1.build(input_shape)
        self.norm2.build(input_shape)
        self.mlp_in = layers.Dense(self.mlp_dim, activation=self.activation, name="mlp_in")
        self.mlp_in.build(input_shape)
        self.mlp_out = layers.Dense(dim, name="mlp_out")
        self.mlp_out.build((*input_shape[:-1], self.mlp_dim))
        self.drop = layers.Dropout(self.dropout)
        # XLA on CPU cannot differentiate the float16 dot-product-attention kernel Keras picks without dropout
        # ("precision F16_F16_F32 is not supported by dot_general on CPU"); asking for the attention scores takes
        # Keras's explicit einsum path instead. Accelerators keep the fused kernel.
        self._explicit_attention = (
            keras.backend.backend() == "jax"
            and self.compute_dtype == "float16"
            and all(d.lower().startswith("cpu") for d in keras.distribution.list_devices())
        )

    def _attend(self, x, mask, training):
        if self._explicit_attention:
            out, _ = self.attention(x, x, attention_mask=mask, training=training, return_attention_scores=True)
        else:
            out = self.attention(x, x, attention_mask=mask, training=training)
        return self.drop(out, training=training)

    def _mlp(self, x, training):
        hidden = self.mlp_in(x)
        if self.mlp_hidden_dropout:
            hidden = self.drop(hidden, training=training)
        return self.drop(self.mlp_out(hidden), training=training)

    def call(self, x, padding_mask=None, training=False):
        # (B, 1, L): every query may attend to every real key.
        mask = None if padding_mask is None else ops.cast(padding_mask, "bool")[:, None, :]
        if self.norm_first:
            x = x + self._attend(self.norm1(x), mask, training)
            return x + self._mlp(self.norm2(x), training)
        x = self.norm1(x + self._attend(x, mask, training))
        return self.norm2(x + self._mlp(x, training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "mlp_dim": self.mlp_dim,
            "dropout": self.dropout,
            "norm_first": self.norm_first,
            "activation": self.activation,
            "epsilon": self.epsilon,
            "mlp_hidden_dropout": self.mlp_hidden_dropout,
        }
