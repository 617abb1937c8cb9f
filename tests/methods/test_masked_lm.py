"""MaskedLM and the text encoder: masking rules, training on WikiText-2, export, bad input."""

import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_ssl
from keras_ssl import backbones, methods
from keras_ssl.augment.text import mask_tokens
from keras_ssl.data import WordPieceTokenizer
from keras_ssl.testing import shared_data_file

LENGTH = 32


@pytest.fixture(scope="module")
def token_ids():
    with open(shared_data_file("wikitext-2/wiki.valid.tokens"), encoding="utf-8") as f:
        lines = [line.replace("<unk>", "[UNK]") for line in f.readlines()[:1500] if line.strip()]
    tokenizer = WordPieceTokenizer.train(lines, vocabulary_size=400)
    return tokenizer.encode(lines, max_length=LENGTH), tokenizer.vocabulary_size


def tiny_encoder(vocabulary_size, **kwargs):
    return backbones.TransformerEncoder(vocabulary_size, "tiny", max_length=LENGTH, dim=32, num_heads=2, **kwargs)


def test_the_encoder_ignores_padding():
    encoder = tiny_encoder(50, dropout=0.0)
    ids = np.array([[2, 7, 8, 3, 0, 0]], "int32")
    padded_more = np.array([[2, 7, 8, 3, 0, 0, 0, 0, 0, 0]], "int32")
    short, long = encoder.predict(ids, verbose=0), encoder.predict(padded_more, verbose=0)
    assert short.shape == (1, 6, 32)
    np.testing.assert_allclose(short[:, :4], long[:, :4], atol=1e-5)  # real tokens never attend to padding


def test_masking_follows_the_80_10_10_rule_and_spares_special_tokens():
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 1000, size=(256, 64)).astype("int32")
    ids[:, 0], ids[:, -8:] = 2, 0  # [CLS] ... [PAD]
    inputs, positions, targets, weights = (
        keras.ops.convert_to_numpy(t) for t in mask_tokens(ids, 0.15, 1000, 4, 5, keras.random.SeedGenerator(0))
    )
    chosen = np.zeros_like(ids, dtype=bool)
    for row, (pos, w) in enumerate(zip(positions, weights)):
        chosen[row, pos[w > 0]] = True
    words = ids >= 5
    assert not chosen[~words].any()  # never padding or special tokens
    assert abs(chosen[words].mean() - 0.15) < 0.01
    np.testing.assert_array_equal(np.sort(targets[weights > 0]), np.sort(ids[chosen]))
    np.testing.assert_array_equal(inputs[~chosen], ids[~chosen])  # only chosen tokens change
    masked, same = (inputs[chosen] == 4).mean(), (inputs[chosen] == ids[chosen]).mean()
    assert abs(masked - 0.8) < 0.03 and abs(same - 0.1) < 0.03  # the rest are random words
    assert inputs[chosen].min() >= 4 and inputs[chosen].max() < 1000


def test_a_few_epochs_on_wikitext_beat_the_untrained_model(token_ids):
    ids, vocabulary_size = token_ids
    method = methods.MaskedLM(tiny_encoder(vocabulary_size), seed=0)
    method.compile(optimizer=keras.optimizers.Adam(2e-3))
    before = method.evaluate_masked(ids[:200], seed=1)
    history = method.fit(ids, batch_size=32, epochs=3, verbose=0).history
    after = method.evaluate_masked(ids[:200], seed=1)
    assert before["predictions"] == after["predictions"] > 100  # same masks for both
    assert after["cross_entropy"] < before["cross_entropy"] - 0.5
    assert after["accuracy"] > before["accuracy"] + 0.03
    assert {"accuracy", "perplexity", "embedding_std"} <= set(history)


@pytest.mark.savedmodel
def test_the_encoder_exports_and_serves_token_ids_in_a_fresh_process(tmp_path, token_ids):
    ids, vocabulary_size = token_ids
    method = methods.MaskedLM(tiny_encoder(vocabulary_size), seed=0)
    path = keras_ssl.export(method, tmp_path / "bert", input_shape=(LENGTH,))
    np.save(tmp_path / "ids.npy", ids[:4])
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "np.save(sys.argv[3], m.signatures['serve'](tf.constant(np.load(sys.argv[2])))['features'].numpy())\n"
    )
    subprocess.run([sys.executable, "-c", script, path, tmp_path / "ids.npy", tmp_path / "out.npy"], check=True)
    expected = method.encoder.predict(ids[:4], verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-4)
    np.testing.assert_allclose(keras_ssl.load(path).predict(ids[:4], verbose=0), expected, atol=1e-5)


def test_bad_input_gets_clear_errors(token_ids):
    ids, vocabulary_size = token_ids
    method = methods.MaskedLM(tiny_encoder(vocabulary_size))
    v = vocabulary_size
    with pytest.raises(ValueError, match=rf"Token ids must lie in \[0, {v}\). Received ids in \[{v}, {v}\]"):
        method.fit(np.full((4, 8), vocabulary_size), verbose=0)
    with pytest.raises(ValueError, match=rf"at most {LENGTH} tokens \(the encoder's maximum\). Received: 40"):
        method.fit(np.ones((4, 40), "int32"), verbose=0)
    with pytest.raises(ValueError, match=r"`token_ids` is empty. Received: shape=\(0, 8\)"):
        method.fit(np.zeros((0, 8), "int32"), verbose=0)
    with pytest.raises(ValueError, match="Expected integer `token_ids`. Received: dtype=float32"):
        method.fit(np.zeros((4, 8), "float32"), verbose=0)
    with pytest.raises(ValueError, match=r"`mask_rate` must be in \(0, 1\)"):
        methods.MaskedLM(tiny_encoder(vocabulary_size), mask_rate=0.0)
    with pytest.raises(ValueError, match="does not match the encoder's token embedding"):
        methods.MaskedLM(tiny_encoder(vocabulary_size), vocabulary_size=vocabulary_size + 1)
    with pytest.raises(ValueError, match="needs a text encoder"):
        methods.MaskedLM(backbones.MLP(8, (8,), 4))
    with pytest.raises(ValueError, match=rf"at most {LENGTH} tokens.*Received: 40 tokens"):
        tiny_encoder(vocabulary_size)(np.ones((1, 40), "int32"))
