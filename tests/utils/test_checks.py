"""Token ids outside the vocabulary: a clear error from text encoders and classifiers, on every backend."""

import keras
import numpy as np
import pytest

from keras_ssl import backbones, evaluation, layers
from keras_ssl.utils import checks

MESSAGE = r"Expected token ids in \[0, 30\) \(the vocabulary size is 30\). Received ids"
GOOD = np.array([[2, 5, 7, 0], [1, 29, 0, 0]], "int32")
BAD = np.array([[2, 5, 31, 0], [1, -1, 0, 0]], "int32")


def tiny_encoder():
    return backbones.TransformerEncoder(30, dim=8, depth=1, num_heads=2, max_length=4, dropout=0.0)


def test_concrete_ids_are_checked_at_once():
    assert checks.assert_token_ids_in_range(GOOD, 30) is GOOD
    with pytest.raises(ValueError, match=MESSAGE + r" in \[-1, 31\], 2 of them outside"):
        checks.assert_token_ids_in_range(BAD, 30)
    with pytest.raises(ValueError, match=MESSAGE):
        checks.assert_token_ids_in_range(keras.ops.convert_to_tensor(BAD), 30)
    checks.assert_token_ids_in_range(np.zeros((2, 0), "int32"), 30)  # nothing to check


def test_the_encoder_and_the_classifier_refuse_ids_outside_the_vocabulary():
    encoder = tiny_encoder()
    assert keras.ops.convert_to_numpy(encoder(GOOD)).shape == (2, 4, 8)
    with pytest.raises(ValueError, match=MESSAGE):
        encoder(BAD)  # eager
    with pytest.raises(Exception, match=MESSAGE):
        encoder.predict(BAD, verbose=0)  # compiled: a TensorFlow graph assertion or a JAX host callback
    classifier = evaluation.text_classifier(tiny_encoder(), 2)
    assert keras.ops.convert_to_numpy(classifier(GOOD)).shape == (2, 2)
    with pytest.raises(Exception, match=MESSAGE):
        classifier.predict(BAD, verbose=0)
    classifier = evaluation.text_classifier(tiny_encoder(), 2)
    classifier.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.raises(Exception, match=MESSAGE):
        classifier.fit(BAD, np.array([0, 1]), verbose=0)


def test_a_classifier_adds_a_check_only_where_its_encoder_has_none():
    checked = evaluation.text_classifier(tiny_encoder(), 2)
    assert not any(isinstance(layer, layers.TokenIdCheck) for layer in checked.layers)
    inputs = keras.Input((None,), dtype="int32")
    plain = keras.Model(inputs, keras.layers.Embedding(30, 4)(inputs))
    classifier = evaluation.text_classifier(plain, 2, pooling="mean")
    (check,) = [layer for layer in classifier.layers if isinstance(layer, layers.TokenIdCheck)]
    assert check.vocabulary_size == 30
    with pytest.raises(ValueError, match=MESSAGE):
        classifier(BAD)


def test_the_check_layer_round_trips_and_refuses_a_bad_size():
    layer = layers.TokenIdCheck(30, name="check")
    clone = layers.TokenIdCheck.from_config(layer.get_config())
    assert clone.vocabulary_size == 30 and clone.name == "check"
    encoder = tiny_encoder()
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(encoder))
    with pytest.raises(ValueError, match=MESSAGE):
        restored(BAD)
    with pytest.raises(ValueError, match="vocabulary_size"):
        layers.TokenIdCheck(0)
    with pytest.raises(ValueError, match="vocabulary_size"):
        layers.TokenIdCheck(2.5)


def test_host_callbacks_can_be_turned_off_for_export(backend):
    if backend != "jax":
        pytest.skip("host callbacks exist under JAX only")
    import jax

    def checked(ids):
        return checks.assert_token_ids_in_range(ids, 30) + 0

    def unchecked(ids):  # another function: JAX caches traces by function
        return checks.assert_token_ids_in_range(ids, 30) + 0

    with checks.host_callbacks_off():
        assert "callback" not in str(jax.make_jaxpr(unchecked)(GOOD))
    assert "callback" in str(jax.make_jaxpr(checked)(GOOD))
