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


def ViT(
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
):
    """A ViT encoder: patch embedding, positions, pre-LN blocks, pooled output.

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

    Returns:
        A functional `keras.Model` from (image_size, image_size, channels)
        images in [0, 1] to a `dim`-vector. Its layers are named so MAE can
        run them on the visible patches only: `normalize`, `patch_embed`,
        `position_embed`, `class_token` (pool="cls"), `block1`..`blockN`, `norm`.
    """
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
            f"`image_size` must be divisible by `patch_size`. Received: image_size={image_size}, patch_size={patch_size}"
        )
    if dim % num_heads:
        raise ValueError(f"`dim` must be divisible by `num_heads`. Received: dim={dim}, num_heads={num_heads}")
    if positions == "sincos" and dim % 4:
        raise ValueError(f"Sine-cosine positions need `dim` divisible by 4. Received: dim={dim}")
    grid = (image_size // patch_size, image_size // patch_size)

    inputs = keras.Input(shape=(image_size, image_size, channels), name="images")
    x = layers.Rescaling(scale=2.0, offset=-1.0, name="normalize")(inputs)
    x = PatchEmbedding(patch_size, dim, name="patch_embed")(x)
    x = PositionEmbedding(kind=positions, grid=grid, name="position_embed")(x)
    if pool == "cls":
        x = ClassToken(name="class_token")(x)
    for i in range(depth):
        x = TransformerBlock(num_heads, int(mlp_ratio * dim), dropout=dropout, name=f"block{i + 1}")(x)
    x = layers.LayerNormalization(epsilon=1e-6, name="norm")(x)
    outputs = TokenPooling(pool, name="pool")(x)
    return keras.Model(inputs, outputs, name=name or f"vit_{size}_{image_size}")
