"""Reconstruction quality of autoencoders and MAE: PSNR on a split, and PNG grids."""

import os

import keras
import numpy as np

from keras_ssl.data.arrays import check_images


def _check_reconstruction_method(method):
    if not hasattr(method, "reconstruct"):
        raise ValueError(
            "Expected a reconstruction method (Autoencoder, DenoisingAutoencoder, VariationalAutoencoder, MAE). "
            f"Received: {type(method).__name__}"
        )


def reconstruction_psnr(method, images, batch_size=256):
    """Mean per-image PSNR (dB, pixels in [0, 1]) of `method`'s reconstructions of `images`.

    For methods that hide part of the input (MAE), only the hidden pixels
    count: the visible ones are copied, not reconstructed.
    """
    _check_reconstruction_method(method)
    out = method.reconstruct(check_images(images), batch_size=batch_size)
    error = np.square(out["reconstructions"].astype("float64") - out["inputs"])
    if "mask" in out:
        weights = np.broadcast_to(out["mask"], error.shape)
        mse = (error * weights).sum(axis=(1, 2, 3)) / np.maximum(weights.sum(axis=(1, 2, 3)), 1)
    else:
        mse = error.mean(axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(1.0 / np.maximum(mse, 1e-10))))


def save_reconstruction_grid(method, images, path, num_images=8, title=None):
    """Writes a PNG: one column per image; rows inputs, what the encoder saw (if hidden), reconstructions.

    Returns `path`. Parent directories are created; an existing file is
    replaced only once the new one is fully written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _check_reconstruction_method(method)
    images = check_images(images)[:num_images]
    out = method.reconstruct(images)
    rows = [("input", out["inputs"])]
    if "corrupted" in out:
        rows.append(("masked" if "mask" in out else "corrupted", out["corrupted"]))
    rows.append(("reconstruction", out["reconstructions"]))
    n = len(images)
    fig, axes = plt.subplots(len(rows), n, figsize=(1.2 * n, 1.3 * len(rows)), squeeze=False)
    for r, (label, batch) in enumerate(rows):
        for c in range(n):
            ax = axes[r][c]
            image = np.clip(batch[c], 0.0, 1.0)
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r][0].set_ylabel(label, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = f"{path}.partial.png"
    fig.savefig(partial, dpi=100)
    plt.close(fig)
    os.replace(partial, path)
    return path


class ReconstructionGrid(keras.callbacks.Callback):
    """Saves `save_reconstruction_grid` of fixed images to `directory/epoch_NNN.png` every `every` epochs."""

    def __init__(self, images, directory, every=1, num_images=8):
        super().__init__()
        self.images, self.directory = check_images(images)[:num_images], directory
        self.every, self.num_images = max(1, int(every)), num_images
        self.paths = []

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        path = os.path.join(self.directory, f"epoch_{epoch + 1:03d}.png")
        self.paths.append(
            save_reconstruction_grid(self.model, self.images, path, self.num_images, f"epoch {epoch + 1}")
        )
