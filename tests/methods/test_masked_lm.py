"""MaskedLM and the text encoder: masking rules, training on WikiText-2, export, bad input."""

import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_ssl
from keras_ssl import backbones, methods
from keras_ssl.augment.text import mask_tokens, top_positions
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


def test_top_positions_are_the_indices_top_k_returns():
    rng = np.random.default_rng(0)
    ties = rng.integers(0, 4, size=(64, 40)).astype("float32")  # equal values: the lower index first
    distinct = (rng.random((64, 40)) + 2.0 * (rng.random((64, 40)) < 0.15)).astype("float32")  # as mask_tokens draws
    for values in (ties, distinct):
        expected = np.argsort(-values, axis=1, kind="stable")[:, :9]
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(top_positions(values, 9)), expected)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(top_positions(distinct, 40)),
        keras.ops.convert_to_numpy(keras.ops.top_k(distinct, 40)[1]),
    )


def test_the_loss_is_the_cross_entropy_of_the_masked_positions_only():
    # A NumPy reference of the whole loss on the same masks: gather the chosen positions' states, the tied output
    # layer, cross-entropy and top-1 hits, averaged over the really chosen positions.
    rng = np.random.default_rng(3)
    vocabulary_size = 60
    ids = rng.integers(5, vocabulary_size, size=(6, LENGTH)).astype("int32")
    ids[:, 0], ids[:2, -9:] = 2, 0  # [CLS], and padding in two rows
    method = methods.MaskedLM(tiny_encoder(vocabulary_size, dropout=0.0), seed=0)
    initial = method.get_weights()  # the seed generator's state too
    loss, logs = method.compute_ssl_loss(keras.ops.convert_to_tensor(ids), training=False)
    cross_entropy, hits, weights, _ = (
        keras.ops.convert_to_numpy(t)
        for t in method.predictions(ids, training=False, seed_generator=keras.random.SeedGenerator(7))
    )

    inputs, positions, targets, chosen = (
        keras.ops.convert_to_numpy(t)
        for t in mask_tokens(ids, 0.15, vocabulary_size, 4, 5, keras.random.SeedGenerator(7))
    )
    states = keras.ops.convert_to_numpy(method.encoder(inputs, training=False))
    gathered = np.take_along_axis(states, positions[..., None], axis=1)
    h = keras.ops.convert_to_numpy(method.transform_norm(method.transform(gathered)))
    embeddings = keras.ops.convert_to_numpy(method.token_embedding.embeddings)
    logits = h.astype("float64") @ embeddings.T + keras.ops.convert_to_numpy(method.output_bias)
    top = logits.max(axis=-1, keepdims=True)
    log_z = (top + np.log(np.exp(logits - top).sum(axis=-1, keepdims=True)))[..., 0]
    expected = log_z - np.take_along_axis(logits, targets[..., None].astype("int64"), axis=-1)[..., 0]
    np.testing.assert_array_equal(weights, chosen)
    np.testing.assert_allclose(cross_entropy, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(hits, (logits.argmax(axis=-1) == targets).astype("float32"))

    # compute_ssl_loss: the mean over the chosen positions of its own masks (the method's seed generator).
    replay = methods.MaskedLM(tiny_encoder(vocabulary_size, dropout=0.0), seed=0)
    replay.set_weights(initial)
    cross_entropy, hits, weights, _ = (keras.ops.convert_to_numpy(t) for t in replay.predictions(ids, training=False))
    assert weights.sum() > 10
    np.testing.assert_allclose(float(loss), (cross_entropy * weights).sum() / weights.sum(), rtol=1e-6)
    np.testing.assert_allclose(float(logs["accuracy"]), (hits * weights).sum() / weights.sum(), rtol=1e-6)


@pytest.mark.large
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


@pytest.mark.large
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
