"""Augmentation layers that generate views on the accelerator."""

from keras_ssl.augment.image import (
    GaussianBlur,
    ImageAugmenter,
    MultiViewAugmenter,
    RandomApply,
    RandomResizedCrop,
    Solarize,
    byol_augmenter,
    moco_augmenter,
    multicrop_augmenter,
    simclr_augmenter,
    to_unit_float,
)

__all__ = [
    "GaussianBlur",
    "ImageAugmenter",
    "MultiViewAugmenter",
    "RandomApply",
    "RandomResizedCrop",
    "Solarize",
    "byol_augmenter",
    "moco_augmenter",
    "multicrop_augmenter",
    "simclr_augmenter",
    "to_unit_float",
]
