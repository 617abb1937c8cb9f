"""BERT's masked-language-model pretraining (Devlin et al., 2019)."""

import math

import keras
from keras import layers, ops

from keras_ssl.augment.text import mask_tokens
from keras_ssl.data.arrays import check_token_ids
from keras_ssl.data.tokenizer import FIRST_WORD_ID, MASK_ID
from keras_ssl.methods.method import Method, embedding_std
from keras_ssl.methods.registry import register_method


@register_method("masked_lm", data="text")
class MaskedLM(Method):
    """Masked-language-model pretraining of a text encoder.

    "We simply mask some percentage of the input tokens at random, and then
    predict those masked tokens." In each train step, on the device, each
    word token is chosen with probability `mask_rate` (padding and special
    tokens never are) and replaced by [MASK] 80% of the time, a random word
    10%, itself 10%; the loss is the cross-entropy of the original token at
    the chosen positions only. The output layer shares the token-embedding
    matrix (as in BERT), after a Dense -> GELU -> LayerNorm transform.

    Args:
        encoder: a text encoder from int ids (batch, length) to hidden states
            (batch, length, dim), e.g. `backbones.TransformerEncoder`.
        vocabulary_size: the tokenizer's vocabulary size (default: the
            encoder's token-embedding size).
        mask_rate: probability that a word token is chosen (0.15 in BERT).
        mask_id, first_word_id: the [MASK] id and the first id that is a word
            (ids below it are padding/special; keras_ssl's tokenizer: 4 and 5).
        seed: seeds the masking.

    Logged: `accuracy` (masked-token top-1), `perplexity` (exp of the batch's
    masked-token cross-entropy), `embedding_std` (of mean-pooled states).
    `evaluate_masked` scores a split exactly.
    """

    logged_metrics = ("accuracy", "perplexity", "embedding_std")
    input_kind = "tokens"
    warns_on_collapse = False  # predicting tokens rules out a constant encoder

    def __init__(
        self,
        encoder,
        vocabulary_size=None,
        mask_rate=0.15,
        mask_id=MASK_ID,
        first_word_id=FIRST_WORD_ID,
        seed=None,
        **kwargs,
    ):
        super().__init__(encoder, None, **kwargs)
        if len(self.encoder.input_shape) != 2 or len(self.encoder.output_shape) != 3:
            raise ValueError(
                "MaskedLM needs a text encoder from token ids (batch, length) to states (batch, length, dim). "
                f"Received an encoder from {self.encoder.input_shape} to {self.encoder.output_shape}"
            )
        if not 0 < mask_rate < 1:
            raise ValueError(f"`mask_rate` must be in (0, 1). Received: mask_rate={mask_rate}")
        # Tied to the encoder's token embedding when it has one (keras_ssl's TransformerEncoder does).
        self.token_embedding = getattr(self.encoder, "token_embedding", None)
        embedding_size = self.token_embedding.input_dim if self.token_embedding is not None else None
        self.vocabulary_size = int(vocabulary_size or embedding_size or 0)
        if self.vocabulary_size <= first_word_id:
            raise ValueError(
                f"`vocabulary_size` must exceed first_word_id={first_word_id}. Received: {vocabulary_size}"
            )
        if embedding_size is not None and embedding_size != self.vocabulary_size:
            raise ValueError(
                f"vocabulary_size={self.vocabulary_size} does not match the encoder's token embedding "
                f"({embedding_size} ids)."
            )
        self.mask_rate, self.mask_id, self.first_word_id, self.seed = (
            float(mask_rate),
            int(mask_id),
            int(first_word_id),
            seed,
        )
        self.max_length = getattr(self.encoder, "max_length", None)
        dim = self.encoder.output_shape[-1]
        self.transform = layers.Dense(dim, activation="gelu", name="mlm_transform")
        self.transform_norm = layers.LayerNormalization(epsilon=1e-12, name="mlm_norm")
        # Tied to the token embedding when there is one (BERT); otherwise its own output matrix.
        self.output_layer = (
            None if self.token_embedding is not None else layers.Dense(self.vocabulary_size, name="mlm_output")
        )
        self.output_bias = self.add_weight(shape=(self.vocabulary_size,), initializer="zeros", name="mlm_bias")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.build_heads(dim)

    def build_heads(self, feature_dim):
        self.transform.build((None, None, feature_dim))
        self.transform_norm.build((None, None, feature_dim))
        if self.output_layer is not None:
            self.output_layer.build((None, None, feature_dim))

    @property
    def embedding_dim(self):
        return self.encoder.output_shape[-1]

    def build(self, input_shape):
        length = input_shape[1] if len(input_shape) > 1 else None
        if self.max_length and length and length > self.max_length:
            raise ValueError(
                f"Expected sequences of at most {self.max_length} tokens (the encoder's maximum). Received: {length}"
            )
        self.built = True

    def call(self, token_ids, training=False):
        return self.encoder(token_ids, training=training)

    def logits(self, states):
        h = self.transform_norm(self.transform(states))
        if self.output_layer is not None:
            return self.output_layer(h) + self.output_bias
        return ops.matmul(h, ops.transpose(ops.cast(self.token_embedding.embeddings, h.dtype))) + self.output_bias

    def predictions(self, token_ids, training=False, seed_generator=None):
        """Masks a batch and scores the chosen positions.

        Returns `(cross_entropy, hits, weights, states)`: per-position
        cross-entropy (nats) and top-1 hits (B, P), 1.0 where a position was
        really chosen (B, P), and the encoder's states (B, L, dim).
        """
        inputs, positions, targets, weights = mask_tokens(
            token_ids,
            self.mask_rate,
            self.vocabulary_size,
            self.mask_id,
            self.first_word_id,
            seed_generator or self.seed_generator,
        )
        states = self.encoder(inputs, training=training)
        logits = ops.cast(self.logits(ops.take_along_axis(states, positions[..., None], axis=1)), "float32")
        cross_entropy = keras.losses.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        hits = ops.cast(ops.equal(ops.argmax(logits, axis=-1), ops.cast(targets, "int32")), "float32")
        return cross_entropy, hits, weights, states

    def compute_ssl_loss(self, token_ids, training=True):
        cross_entropy, hits, weights, states = self.predictions(token_ids, training=training)
        count = ops.maximum(ops.sum(weights), 1.0)
        loss = ops.sum(cross_entropy * weights) / count
        real = ops.cast(ops.not_equal(token_ids, 0), "float32")[..., None]
        pooled = ops.sum(ops.cast(states, "float32") * real, axis=1) / ops.maximum(ops.sum(real, axis=1), 1.0)
        logs = {
            "accuracy": ops.sum(hits * weights) / count,
            "perplexity": ops.exp(ops.minimum(loss, 50.0)),
            "embedding_std": embedding_std(pooled),
        }
        return loss, logs

    def check_inputs(self, x):
        """Token ids: an int array (num_sequences, length) checked against the vocabulary, or a tf.data.Dataset."""
        if x is None or hasattr(x, "element_spec") or isinstance(x, keras.utils.PyDataset):
            return x
        return self.check_token_ids(x[0] if isinstance(x, (tuple, list)) else x)

    def check_token_ids(self, token_ids):
        """`token_ids` as int32, or a ValueError unless they are (N, L <= max_length) ids in the vocabulary."""
        return check_token_ids(token_ids, vocabulary_size=self.vocabulary_size, max_length=self.max_length)

    def evaluate_masked(self, token_ids, batch_size=128, seed=0):
        """Masked-token accuracy and perplexity over a whole split, summed exactly.

        Masks are drawn with `seed`, so two encoders (or a baseline) can be
        scored on the same positions. Returns a dict with `accuracy`,
        `perplexity`, `cross_entropy` (nats) and `predictions` (count).
        """
        ids = self.check_token_ids(token_ids)
        generator = keras.random.SeedGenerator(seed)
        total, correct, count = 0.0, 0.0, 0.0
        for start in range(0, len(ids), batch_size):
            batch = ops.convert_to_tensor(ids[start : start + batch_size])
            cross_entropy, hits, weights, _ = self.predictions(batch, training=False, seed_generator=generator)
            total += float(ops.sum(cross_entropy * weights))
            correct += float(ops.sum(hits * weights))
            count += float(ops.sum(weights))
        if count == 0:
            raise ValueError("No token was masked: the split holds no word tokens.")
        return {
            "accuracy": correct / count,
            "perplexity": math.exp(total / count),
            "cross_entropy": total / count,
            "predictions": int(count),
        }

    def get_config(self):
        config = super().get_config()
        config.pop("augmenter", None)
        config.update(
            vocabulary_size=self.vocabulary_size,
            mask_rate=self.mask_rate,
            mask_id=self.mask_id,
            first_word_id=self.first_word_id,
            seed=self.seed,
        )
        return config
