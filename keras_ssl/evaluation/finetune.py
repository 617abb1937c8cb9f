"""Downstream models around a pretrained encoder."""

import numbers

import keras
from keras import layers

from keras_ssl.layers.transformer import PaddingMask, TokenIdCheck, TokenPooling


def text_classifier(encoder, num_classes, pooling="cls", dropout=0.1, pad_id=0, name="text_classifier"):
    """A classifier on a text encoder: pooled states -> dropout -> Dense logits.

    Args:
        encoder: from int token ids (batch, length) to states (batch, length,
            dim): `MaskedLM`'s encoder, `Word2Vec.as_embedding()`, or any such
            model.
        num_classes: number of outputs (logits; use `from_logits=True`).
        pooling: "cls" (the first token's state, BERT) or "mean" (the mean
            over real tokens; use it for word vectors).
        pad_id: the padding id that "mean" skips.

    Returns a functional `keras.Model` from token ids to logits; the encoder
    stays trainable unless you freeze it. Ids outside the encoder's
    vocabulary raise an error that names them: the encoder's own
    `TokenIdCheck` does it (TransformerEncoder, Word2Vec.as_embedding), else
    one is added here, sized by the encoder's first `Embedding`.
    """
    if len(encoder.input_shape) != 2 or len(encoder.output_shape) != 3:
        raise ValueError(
            "Expected a text encoder from token ids (batch, length) to states (batch, length, dim). "
            f"Received an encoder from {encoder.input_shape} to {encoder.output_shape}"
        )
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 1:
        raise ValueError(
            f"`num_classes` must be a positive int (the number of logits). Received: num_classes={num_classes!r}"
        )
    inputs = keras.Input(shape=encoder.input_shape[1:], dtype="int32", name="token_ids")
    ids = inputs
    vocabulary_size = _unchecked_vocabulary_size(encoder)
    if vocabulary_size is not None:
        ids = TokenIdCheck(vocabulary_size, name="classifier_token_id_check")(inputs)
    states = encoder(ids)
    mask = PaddingMask(pad_id, name="classifier_padding_mask")(ids)
    x = TokenPooling(pooling, name="pool")(states, padding_mask=mask)
    x = layers.Dropout(dropout, name="classifier_dropout")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)


def _unchecked_vocabulary_size(encoder):
    """The vocabulary size to check ids against, or None when the encoder checks them itself or has no Embedding."""
    found = list(_sublayers(encoder))
    if any(isinstance(layer, TokenIdCheck) for layer in found):
        return None
    sizes = [layer.input_dim for layer in found if isinstance(layer, layers.Embedding)]
    return sizes[0] if sizes else None


def _sublayers(model):
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _sublayers(layer)
