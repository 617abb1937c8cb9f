"""Data: checks, batching, tf.data/TFDS inputs, image folders and TFRecords, and dataset readers."""

from keras_ssl.data.arrays import ArrayBatches, check_images, check_token_ids, check_vectors, draw_seed, to_float_images
from keras_ssl.data.cifar import CIFAR10_LABELS, load_cifar10_npz
from keras_ssl.data.datasets import (
    check_replica_batch,
    first_batch_shape,
    is_resumable,
    limit_steps,
    positioned,
    prepare_pretraining_data,
    resolve_input_string,
    tfds_images,
)
from keras_ssl.data.folders import (
    IMAGE_EXTENSIONS,
    ImageFolder,
    TFRecordImages,
    UnreadableImageWarning,
    image_folder,
    list_image_files,
    tfrecord_images,
    write_tfrecords,
)
from keras_ssl.data.text import drop_subphrases, load_sst2, load_wikitext, read_text_files
from keras_ssl.data.tokenizer import SPECIAL_TOKENS, WordPieceTokenizer

__all__ = [
    "ArrayBatches",
    "IMAGE_EXTENSIONS",
    "ImageFolder",
    "TFRecordImages",
    "UnreadableImageWarning",
    "image_folder",
    "is_resumable",
    "list_image_files",
    "read_text_files",
    "resolve_input_string",
    "tfrecord_images",
    "write_tfrecords",
    "check_replica_batch",
    "draw_seed",
    "first_batch_shape",
    "limit_steps",
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
