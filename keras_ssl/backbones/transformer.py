"""BERT-style Transformer encoders for text (Devlin et al., 2019)."""

import keras
from keras import layers

from keras_ssl.backbones.validation import check_choice, check_positive
from keras_ssl.layers.transformer import PaddingMask, PositionEmbedding, TokenIdCheck, TransformerBlock

# (hidden size, layers, heads): the BERT miniatures of Turc et al. (2019) and BERT-base.
TEXT_SIZES = {
    "tiny": (128, 2, 2),
    "mini": (256, 4, 4),
    "small": (512, 4, 8),
    "base": (768, 12, 12),
}


@keras.saving.register_keras_serializable(package="keras_ssl")
class TransformerEncoder(keras.Model):
    """A BERT-style encoder: token + position embeddings, Transformer blocks, padding mask.

    A functional `keras.Model` from int token ids (batch, length <=
    max_length) to hidden states (batch, length, dim). Sequences longer than
    `max_length` raise a ValueError; ids outside `[0, vocabulary_size)` raise
    an error naming them (`keras_ssl.layers.TokenIdCheck`). Pool it for
    classification with `keras_ssl.layers.TokenPooling` ("cls": the [CLS]
    token). `token_embedding` is public (MaskedLM ties its output layer to it).

    Args:
        vocabulary_size: number of token ids (e.g. `tokenizer.vocabulary_size`).
        size: "tiny" (128 dims, 2 layers, 2 heads), "mini" (256, 4, 4),
            "small" (512, 4, 8) or "base" (768, 12, 12); `dim`, `depth` and
            `num_heads` override it.
        max_length: the most tokens per sequence (learned positions).
        norm_first: pre-LN blocks (stabler for short training) instead of
            BERT's post-LN; pre-LN adds a final LayerNorm.
        dropout: dropout on embeddings, attention weights, and the outputs of
            attention and MLP; not on the MLP's hidden units (as in BERT).
        pad_id: the id of padding, which attention ignores.
    """

    def __init__(
        self,
        vocabulary_size,
        size="tiny",
        max_length=128,
        norm_first=False,
        dropout=0.1,
        dim=None,
        depth=None,
        num_heads=None,
        mlp_ratio=4.0,
        pad_id=0,
        name=None,
        **kwargs,
    ):
        check_positive("vocabulary_size", vocabulary_size)
        check_positive("max_length", max_length)
        check_choice("size", size, TEXT_SIZES)
        base_dim, base_depth, base_heads = TEXT_SIZES[size]
        dim, depth, num_heads = int(dim or base_dim), int(depth or base_depth), int(num_heads or base_heads)
        if dim % num_heads:
            raise ValueError(f"`dim` must be divisible by `num_heads`. Received: dim={dim}, num_heads={num_heads}")
        token_embedding = layers.Embedding(
            int(vocabulary_size),
            dim,
            name="token_embedding",
            embeddings_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        inputs = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        ids = TokenIdCheck(int(vocabulary_size), name="token_id_check")(inputs)
        mask = PaddingMask(pad_id, name="padding_mask")(ids)
        x = PositionEmbedding(int(max_length), kind="learned", name="position_embedding")(token_embedding(ids))
        if not norm_first:
            x = layers.LayerNormalization(epsilon=1e-12, name="embeddings_norm")(x)
        x = layers.Dropout(dropout, name="embeddings_dropout")(x)
        for i in range(depth):
            block = TransformerBlock(
                num_heads,
                int(mlp_ratio * dim),
                dropout=dropout,
                norm_first=norm_first,
                epsilon=1e-12,
                mlp_hidden_dropout=False,
                name=f"block{i + 1}",
            )
            x = block(x, padding_mask=mask)
        if norm_first:
            x = layers.LayerNormalization(epsilon=1e-12, name="final_norm")(x)
        super().__init__(inputs, x, name=name or f"transformer_{size}", **kwargs)
        self.vocabulary_size, self.size, self.max_length = int(vocabulary_size), size, int(max_length)
        self.norm_first, self.dropout, self.dim, self.depth = bool(norm_first), float(dropout), dim, depth
        self.num_heads, self.mlp_ratio, self.pad_id = num_heads, float(mlp_ratio), int(pad_id)
        self.token_embedding = token_embedding

    def get_config(self):
        return {
            "vocabulary_size": self.vocabulary_size,
            "size": self.size,
            "max_length": self.max_length,
            "norm_first": self.norm_first,
            "dropout": self.dropout,
            "dim": self.dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "pad_id": self.pad_id,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
