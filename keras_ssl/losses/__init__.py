"""Self-supervised losses: pure keras.ops functions plus Loss wrappers."""

from keras_ssl.losses.cosine import negative_cosine_similarity
from keras_ssl.losses.dino import dino_loss
from keras_ssl.losses.info_nce import InfoNCE, info_nce
from keras_ssl.losses.normalize import l2_normalize
from keras_ssl.losses.nt_xent import NTXent, nt_xent
from keras_ssl.losses.reconstruction import kl_divergence, psnr, psnr_from_mse, reconstruction_error
from keras_ssl.losses.redundancy import barlow_twins, vicreg

__all__ = [
    "InfoNCE",
    "NTXent",
    "barlow_twins",
    "dino_loss",
    "info_nce",
    "kl_divergence",
    "l2_normalize",
    "negative_cosine_similarity",
    "nt_xent",
    "psnr",
    "psnr_from_mse",
    "reconstruction_error",
    "vicreg",
]
