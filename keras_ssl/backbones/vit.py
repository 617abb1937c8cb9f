"""Vision Transformer encoders (Dosovitskiy et al., 2021) for 32x32 and 224x224 images."""

import keras
from keras import layers

from keras_ssl.backbones.validation import check_choice, check_positive
from keras_ssl.layers.transformer import ClassToken, PatchEmbedding, PositionEmbedding, TokenPooling, TransformerBlock

# (token dim, depth, heads): DeiT's tiny and small, plus a "nano" for CPU-sized runs.
VIT_SIZES = {
    "nano": (128, 6, 4),
    "tiny": (192, 12, 3),
    "small": (384, 12, 6),
}


@keras.saving.register_keras_serializable(package="keras_ssl")
class ViT(keras.Model):
    """A ViT encoder: patch embedding, positions, pre-LN blocks, pooled output.

    A functional `keras.Model` from (image_size, image_size, channels) images
    in [0, 1] to a `dim`-vector. Its parts are public so methods can run them
    separately (MAE encodes the visible patches only): `embed_patches(images)`
    gives the position-encoded patch tokens, `class_token` (None with
    pool="mean") prepends the [class] token, `blocks` are the Transformer
    blocks and `final_norm` the closing LayerNorm.

    Args:
        size: "nano" (128 dims, 6 blocks, 4 heads), "tiny" (192, 12, 3) or
            "small" (384, 12, 6); `dim`, `depth` and `num_heads` override it.
        image_size: side of the square input images; must divide by `patch_size`.
        patch_size: side of each patch; default 4 for images up to 64 px
            (64 tokens at 32x32) and 16 above (196 tokens at 224x224).
        channels: 1 or 3.
        positions: "sincos" (fixed 2-D sine-cosine, as in MAE) or "learned".
        pool: "cls" (a [class] token) or "mean" (average of the patch tokens).
        mlp_ratio: MLP hidden units per token dimension.
        dropout: dropout inside the blocks.
    """

    def __init__(
        self,
        size="tiny",
        image_size=32,
        patch_size=None,
        channels=3,
        positions="sincos",
        pool="cls",
        dim=None,
        depth=None,
        num_heads=None,
        mlp_ratio=4.0,
        dropout=0.0,
        name=None,
        **kwargs,
    ):
        check_choice("size", size, VIT_SIZES)
        check_choice("positions", positions, ("sincos", "learned"))
        check_choice("pool", pool, ("cls", "mean"))
        check_choice("channels", channels, (1, 3))
        check_positive("image_size", image_size)
        base_dim, base_depth, base_heads = VIT_SIZES[size]
        dim, depth, num_heads = int(dim or base_dim), int(depth or base_depth), int(num_heads or base_heads)
        patch_size = int(patch_size or (4 if image_size <= 64 else 16))
        check_positive("patch_size", patch_size)
        if image_size % patch_size:
            raise ValueError(
                "`image_size` must be divisible by `patch_size`. "
                f"Received: image_size={image_size}, patch_size={patch_size}"
            )
        if dim % num_heads:
            raise ValueError(f"`dim` must be divisible by `num_heads`. Received: dim={dim}, num_heads={num_heads}")
        if positions == "sincos" and dim % 4:
            raise ValueError(f"Sine-cosine positions need `dim` divisible by 4. Received: dim={dim}")
        grid = (image_size // patch_size, image_size // patch_size)

        normalize = layers.Rescaling(scale=2.0, offset=-1.0, name="normalize")
        patch_embed = PatchEmbedding(patch_size, dim, name="patch_embed")
        position_embed = PositionEmbedding(kind=positions, grid=grid, name="position_embed")
        class_token = ClassToken(name="class_token") if pool == "cls" else None
        blocks = [
            TransformerBlock(num_heads, int(mlp_ratio * dim), dropout=dropout, name=f"block{i + 1}")
            for i in range(depth)
        ]
        final_norm = layers.LayerNormalization(epsilon=1e-6, name="norm")

        inputs = keras.Input(shape=(image_size, image_size, channels), name="images")
        x = position_embed(patch_embed(normalize(inputs)))
        if class_token is not None:
            x = class_token(x)
        for block in blocks:
            x = block(x)
        outputs = TokenPooling(pool, name="pool")(final_norm(x))
        super().__init__(inputs, outputs, name=name or f"vit_{size}_{image_size}", **kwargs)

        self.size, self.image_size, self.patch_size, self.channels = size, int(image_size), patch_size, channels
        self.positions, self.pool, self.dim, self.depth, self.num_heads = positions, pool, dim, depth, num_heads
        self.mlp_ratio, self.dropout, self.grid = float(mlp_ratio), float(dropout), grid
        self._normalize, self._patch_embed, self._position_embed = normalize, patch_embed, position_embed
        self.class_token, self.blocks, self.final_norm = class_token, blocks, final_norm

    @property
    def num_patches(self):
        return self.grid[0] * self.grid[1]

    def embed_patches(self, images):
        """(B, H, W, C) images in [0, 1] -> (B, num_patches, dim) position-encoded patch tokens."""
        return self._position_embed(self._patch_embed(self._normalize(images)))

    def get_config(self):
        return {
            "size": self.size,
            "image_size": self.image_size,
            "patch_size": self.patch_size,
            "channels": self.channels,
            "positions": self.positions,
            "pool": self.pool,
            "dim": self.dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "dropout": self.dropout,
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
