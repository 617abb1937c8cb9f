"""A tf.data input's first batch is checked like an array: range, NaN, scale hints; nothing is clipped."""

import numpy as np
import pytest
import tensorflow as tf

from keras_ssl import data


def batched(values, dtype="float32"):
    return tf.data.Dataset.from_tensor_slices(np.asarray(values).astype(dtype)).batch(2, drop_remainder=True)


def test_float_pixels_in_0_255_are_refused_with_how_to_rescale():
    images = np.random.default_rng(0).uniform(0, 255, (4, 4, 4, 3))
    with pytest.raises(ValueError, match=r"in \[0, 1\].*pass uint8 or divide by 255.*range=\[0.*, 2"):
        data.prepare_pretraining_data(batched(images))
    with pytest.raises(ValueError, match=r"\(x \+ 1\) / 2"):
        data.prepare_pretraining_data(batched(images / 127.5 - 1.0))
    with pytest.raises(ValueError, match="never clipped"):
        data.prepare_pretraining_data(batched(images * 10))
    labelled = tf.data.Dataset.from_tensor_slices((images.astype("float32"), np.zeros(4))).batch(2)
    with pytest.raises(ValueError, match="divide by 255"):
        data.prepare_pretraining_data(labelled)


def test_non_finite_values_in_the_first_batch_are_refused():
    images = np.full((4, 4, 4, 3), 0.5)
    images[1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        data.prepare_pretraining_data(batched(images))
    vectors = np.ones((4, 3))
    vectors[0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        data.prepare_pretraining_data(batched(vectors), input_kind="vectors")
    with pytest.raises(ValueError, match=r"Token ids must lie in \[0, inf\). Received ids in \[-1, 3\]"):
        data.prepare_pretraining_data(batched([[1, 2], [-1, 3], [0, 0], [1, 1]], "int32"), input_kind="tokens")


def test_good_first_batches_pass_unchanged():
    images = np.random.default_rng(1).uniform(0, 1, (4, 4, 4, 3))
    for dataset in (batched(images), batched(images, tf.bfloat16.as_numpy_dtype), batched(images * 255, "uint8")):
        returned, steps, shape = data.prepare_pretraining_data(dataset)
        assert returned is dataset and steps == 2 and shape == (4, 4, 3)
    with pytest.raises(ValueError, match="empty"):
        data.prepare_pretraining_data(batched(images).take(0))
