"""Data: checks, batching, tf.data/TFDS inputs and dataset readers."""

from keras_ssl.data.arrays import ArrayBatches, check_images, check_token_ids, check_vectors, draw_seed, to_float_images
from keras_ssl.data.cifar import CIFAR10_LABELS, load_cifar10_npz
from keras_ssl.data.datasets import (
    check_replica_batch,
    first_batch_shape,
    positioned,
    prepare_pretraining_data,
    tfds_images,
)
from keras_ssl.data.text import drop_subphrases, load_sst2, load_wikitext
from keras_ssl.data.tokenizer import SPECIAL_TOKENS, WordPieceTokenizer

__all__ = [
    "ArrayBatches",
    "check_replica_batch",
    "draw_seed",
    "first_batch_shape",
    "positioned",
    "CIFAR10_LABELS",
    "check_images",
    "check_token_ids",
    "check_vectors",
    "drop_subphrases",
    "load_cifar10_npz",
    "load_sst2",
    "load_wikitext",
    "prepare_pretraining_data",
    "tfds_images",
    "SPECIAL_TOKENS",
    "WordPieceTokenizer",
    "to_float_images",
]
