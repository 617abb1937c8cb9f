"""evaluation.text_classifier: pooling over real tokens, any text encoder, learning SST-2, bad input."""

import keras
import numpy as np
import pytest

from keras_ssl import backbones, data, evaluation, methods
from keras_ssl.testing import shared_data_file


def small_encoder(vocabulary_size=50, max_length=16):
    keras.utils.set_random_seed(0)
    return backbones.TransformerEncoder(
        vocabulary_size, "tiny", max_length=max_length, dim=16, depth=1, num_heads=2, norm_first=True
    )


def test_mean_pooling_ignores_padding_and_cls_reads_the_first_state():
    encoder = small_encoder()
    ids = np.array([[2, 11, 12, 13, 3, 0, 0, 0], [2, 21, 22, 3, 0, 0, 0, 0]], dtype="int32")
    longer = np.pad(ids, ((0, 0), (0, 8)))  # the same sequences with 8 more [PAD]s
    mean = evaluation.text_classifier(encoder, 3, pooling="mean")
    np.testing.assert_allclose(mean.predict(ids, verbose=0), mean.predict(longer, verbose=0), atol=1e-5)

    cls = evaluation.text_classifier(encoder, 3, pooling="cls")
    states = encoder.predict(ids, verbose=0)
    expected = states[:, 0] @ np.array(cls.get_layer("logits").kernel) + np.array(cls.get_layer("logits").bias)
    np.testing.assert_allclose(cls.predict(ids, verbose=0), expected, atol=1e-5)
    # Padding is ignored by "mean" only: the classifiers differ on a second real token.
    assert not np.allclose(mean.predict(ids, verbose=0), cls.predict(ids, verbose=0))


def test_a_word2vec_embedding_fine_tunes_inside_the_classifier():
    corpus = [["good", "film"], ["bad", "film"], ["good", "acting"], ["bad", "acting"]] * 20
    word2vec = methods.Word2Vec(vector_size=8, window=2, min_count=1, epochs=1, workers=1, seed=0).fit(
        corpus, progress=False
    )
    embedding = word2vec.as_embedding(trainable=True)
    classifier = evaluation.text_classifier(embedding, 2, pooling="mean", dropout=0.0)
    before = np.array(embedding.weights[0])
    classifier.compile(
        keras.optimizers.AdamW(0.05), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    ids = word2vec.ids(corpus)
    labels = np.array([int(words[0] == "good") for words in corpus])
    history = classifier.fit(ids, labels, epochs=20, batch_size=16, verbose=0)
    assert history.history["accuracy"][-1] == 1.0  # "good" vs "bad" decides every example
    assert not np.allclose(before, np.array(embedding.weights[0]))  # the vectors moved


@pytest.mark.large
def test_fine_tuning_a_transformer_learns_sst2_sentiment():
    phrases, labels = data.load_sst2(shared_data_file("sst2/train.tsv"))
    dev, dev_labels = data.load_sst2(shared_data_file("sst2/dev.tsv"))
    rng = np.random.default_rng(0)
    pick = rng.permutation(len(phrases))[:3000]
    texts, y = [phrases[i] for i in pick], np.array(labels)[pick]
    tokenizer = data.WordPieceTokenizer.train(texts, vocabulary_size=2000)
    classifier = evaluation.text_classifier(small_encoder(tokenizer.vocabulary_size, 32), 2, pooling="mean")
    classifier.compile(
        keras.optimizers.AdamW(3e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    classifier.fit(tokenizer.encode(texts, max_length=32), y, batch_size=32, epochs=3, verbose=0)
    _, accuracy = classifier.evaluate(tokenizer.encode(dev, max_length=32), np.array(dev_labels), verbose=0)
    assert accuracy > 0.6, accuracy  # dev is balanced (444 positive of 872): chance is 51%


def test_bad_arguments_are_refused_with_what_was_received():
    image_encoder = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D()])
    with pytest.raises(ValueError, match=r"Expected a text encoder .* Received an encoder from \(None, 8, 8, 3\)"):
        evaluation.text_classifier(image_encoder, 2)
    with pytest.raises(ValueError, match="`mode` must be 'cls' or 'mean'. Received: mode='max'"):
        evaluation.text_classifier(small_encoder(), 2, pooling="max")
    with pytest.raises(ValueError, match="num_classes.*Received: num_classes=0"):
        evaluation.text_classifier(small_encoder(), 0)
