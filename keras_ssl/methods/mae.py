"""MAE (He et al., 2022): masked autoencoders over ViT patches."""

import keras
from keras import layers, ops

from keras_ssl.augment import ImageAugmenter
from keras_ssl.backbones.vit import ViT
from keras_ssl.layers.transformer import PositionEmbedding, TransformerBlock, patchify, unpatchify
from keras_ssl.losses.reconstruction import psnr_from_mse
from keras_ssl.methods.autoencoder import ReconstructionMethod
from keras_ssl.methods.method import embedding_std
from keras_ssl.methods.registry import register_method
from keras_ssl.utils import replicas


@register_method("mae")
class MAE(ReconstructionMethod):
    """Masked Autoencoders Are Scalable Vision Learners.

    "We mask random patches of the input image and reconstruct the missing
    pixels." Per image, a random `mask_ratio` of the patches is removed (a
    fresh random permutation per sample, drawn on the device); the ViT encoder
    runs on the visible patches only; a light Transformer decoder gets the
    encoded patches plus a shared learned mask token at every removed
    position and predicts each patch's pixels. The loss is the MSE on the
    removed patches only, against targets normalised per patch (mean 0,
    variance 1; `norm_pix_loss=True`, the paper's default).

    Args:
        encoder: a `keras_ssl.backbones.ViT`.
        mask_ratio: fraction of patches removed, in (0, 1) (0.75 in the paper).
        decoder_dim, decoder_depth, decoder_heads: the decoder's width, blocks
            and heads (the paper uses 512, 8, 16 at 224 px; the lighter
            defaults suit 32x32 images and CPU budgets).
        norm_pix_loss: normalise each target patch by its own mean and std.
        augmenter: one-view augmentation; default: RandomResizedCrop with
            scale (0.2, 1) and horizontal flips, as in the paper.
        seed: seeds the masking.

    Logged: `mse` (the loss's masked-patch MSE in pixel units), `psnr` of the
    removed patches (predictions mapped back to pixels with each patch's own
    mean and std when `norm_pix_loss`, as in the paper's figures),
    `embedding_std` of the encoder's pooled visible tokens.
    """

    def __init__(
        self,
        encoder,
        mask_ratio=0.75,
        decoder_dim=128,
        decoder_depth=2,
        decoder_heads=4,
        norm_pix_loss=True,
        augmenter=None,
        seed=None,
        **kwargs,
    ):
        super().__init__(encoder, augmenter, **kwargs)
        if not isinstance(self.encoder, ViT):
            raise ValueError(
                "MAE needs a keras_ssl.backbones.ViT encoder (it runs the ViT's blocks on the visible patches only). "
                f"Received {self.encoder.name!r} of type {type(self.encoder).__name__}."
            )
        if not 0 < mask_ratio < 1:
            raise ValueError(f"`mask_ratio` must be in (0, 1). Received: mask_ratio={mask_ratio}")
        self.input_kind = "images"
        self.reconstruction_loss = "mse"
        self.mask_ratio, self.seed = float(mask_ratio), seed
        self.decoder_dim, self.decoder_depth, self.decoder_heads = (
            int(decoder_dim),
            int(decoder_depth),
            int(decoder_heads),
        )
        self.norm_pix_loss = bool(norm_pix_loss)

        self.patch_size, self.channels = self.encoder.patch_size, self.encoder.channels
        self.grid, self.num_patches = self.encoder.grid, self.encoder.num_patches
        self.num_visible = int(self.num_patches * (1 - self.mask_ratio))
        if self.num_visible < 1:
            raise ValueError(f"mask_ratio={mask_ratio} leaves no visible patch out of {self.num_patches}: lower it.")
        self.has_class_token = self.encoder.class_token is not None

        self.decoder_embed = layers.Dense(self.decoder_dim, name="decoder_embed")
        self.mask_token = self.add_weight(
            shape=(1, 1, self.decoder_dim), initializer=keras.initializers.RandomNormal(stddev=0.02), name="mask_token"
        )
        self.decoder_position = PositionEmbedding(kind="sincos", grid=self.grid, name="decoder_position")
        self.decoder_blocks = [
            TransformerBlock(self.decoder_heads, 4 * self.decoder_dim, name=f"decoder_block{i + 1}")
            for i in range(self.decoder_depth)
        ]
        self.decoder_norm = layers.LayerNormalization(epsilon=1e-6, name="decoder_norm")
        self.decoder_pred = layers.Dense(self.patch_size**2 * self.channels, name="decoder_pred")
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.build_heads(self.feature_dim)

    def build_heads(self, feature_dim):
        token_dim = self.encoder.dim
        n = self.num_patches + int(self.has_class_token)
        self.decoder_embed.build((None, None, token_dim))
        self.decoder_position.build((None, self.num_patches, self.decoder_dim))
        for block in self.decoder_blocks:
            block.build((None, n, self.decoder_dim))
        self.decoder_norm.build((None, n, self.decoder_dim))
        self.decoder_pred.build((None, n, self.decoder_dim))

    def default_augmenter(self, image_size):
        return ImageAugmenter(crop_scale=(0.2, 1.0), jitter_strength=0.0, grayscale_probability=0.0, seed=self.seed)

    def random_masking(self, batch_size):
        """Per sample, a random permutation of the patches: the first `num_visible` stay.

        Returns `(keep, restore, mask)`: indices of the visible patches
        (B, num_visible), the inverse permutation (B, N), and the mask
        (B, N), 1 for removed patches.
        """
        noise = replicas.per_sample(
            lambda s: keras.random.uniform(s, seed=self.seed_generator), (batch_size, self.num_patches)
        )
        shuffle = ops.argsort(noise, axis=1)
        restore = ops.argsort(shuffle, axis=1)
        keep = shuffle[:, : self.num_visible]
        mask = ops.cast(restore >= self.num_visible, "float32")
        return keep, restore, mask

    def masked_pass(self, images, training=False):
        """Runs MAE on a batch; returns a dict of tensors.

        "images" (the augmented input in [0, 1]), "target" (its patches,
        normalised per patch when `norm_pix_loss`), "prediction" (B, N,
        p*p*C), "mask" (B, N), "pixels" (the prediction in pixel units),
        "latent" (the encoder's pooled visible tokens).
        """
        x = self.prepare(images)
        if training and self.augmenter is not None:
            x = self.augmenter(x, training=True)
        vit = self.encoder
        tokens = vit.embed_patches(x)  # (B, N, dim)
        keep, restore, mask = self.random_masking(ops.shape(tokens)[0])
        visible = ops.take_along_axis(tokens, keep[:, :, None], axis=1)  # (B, num_visible, dim)
        if self.has_class_token:
            visible = vit.class_token(visible)
        for block in vit.blocks:
            visible = block(visible, training=training)
        latent = vit.final_norm(visible)

        y = self.decoder_embed(latent)
        head, y = (y[:, :1], y[:, 1:]) if self.has_class_token else (None, y)
        hidden = self.num_patches - self.num_visible
        mask_tokens = ops.repeat(ops.zeros_like(y[:, :1]), hidden, axis=1) + ops.cast(self.mask_token, y.dtype)
        y = ops.concatenate([y, mask_tokens], axis=1)
        y = self.decoder_position(ops.take_along_axis(y, restore[:, :, None], axis=1))
        if head is not None:
            y = ops.concatenate([head, y], axis=1)
        for block in self.decoder_blocks:
            y = block(y, training=training)
        prediction = self.decoder_pred(self.decoder_norm(y))
        if head is not None:
            prediction = prediction[:, 1:]

        prediction = ops.cast(prediction, "float32")  # the loss and the pixel maps in float32 (mixed precision)
        target = patchify(x, self.patch_size)
        pixels = prediction
        if self.norm_pix_loss:
            mean = ops.mean(target, axis=-1, keepdims=True)
            std = ops.sqrt(ops.var(target, axis=-1, keepdims=True) + 1e-6)
            target = (target - mean) / std
            pixels = prediction * std + mean
        pooled = latent[:, 0] if self.has_class_token else ops.mean(latent, axis=1)
        return {
            "images": x,
            "target": target,
            "prediction": prediction,
            "mask": mask,
            "pixels": pixels,
            "latent": pooled,
        }

    def compute_ssl_loss(self, images, training=True):
        out = self.masked_pass(images, training=training)
        mask = out["mask"]
        per_patch = ops.mean(ops.square(out["prediction"] - out["target"]), axis=-1)
        loss = ops.sum(per_patch * mask) / ops.sum(mask)
        # Pixel-space error of the removed patches, per image.
        pixel_error = ops.mean(ops.square(out["pixels"] - patchify(out["images"], self.patch_size)), axis=-1)
        per_image = ops.sum(pixel_error * mask, axis=1) / ops.sum(mask, axis=1)
        logs = {
            "mse": ops.mean(per_image),
            "psnr": psnr_from_mse(per_image),
            "embedding_std": embedding_std(out["latent"]),
        }
        return loss, logs

    def reconstruct_batch(self, inputs):
        out = self.masked_pass(inputs, training=False)
        x, mask = out["images"], out["mask"][:, :, None]
        patches = patchify(x, self.patch_size)
        pixel_mask = unpatchify(ops.ones_like(patches) * mask, self.patch_size, self.grid, self.channels)
        return {
            "inputs": x,
            "corrupted": unpatchify(patches * (1.0 - mask) + 0.5 * mask, self.patch_size, self.grid, self.channels),
            "reconstructions": unpatchify(
                ops.clip(patches * (1.0 - mask) + out["pixels"] * mask, 0.0, 1.0),
                self.patch_size,
                self.grid,
                self.channels,
            ),
            "mask": pixel_mask[..., :1],
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            mask_ratio=self.mask_ratio,
            decoder_dim=self.decoder_dim,
            decoder_depth=self.decoder_depth,
            decoder_heads=self.decoder_heads,
            norm_pix_loss=self.norm_pix_loss,
            seed=self.seed,
        )
        return config
