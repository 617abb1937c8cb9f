"""Word2Vec: gensim's vectors unchanged, the Keras embedding, export, bad input."""

import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_ssl
from keras_ssl import methods
from keras_ssl.testing import shared_data_file

PARAMS = dict(vector_size=16, window=3, min_count=3, epochs=2, workers=1, seed=7)


@pytest.fixture(scope="module")
def sentences():
    with open(shared_data_file("wikitext-2/wiki.valid.tokens"), encoding="utf-8") as f:
        lines = [line.split() for line in f.readlines()[:600]]
    return [line for line in lines if line]


@pytest.fixture(scope="module")
def trained(sentences):
    return methods.Word2Vec(**PARAMS).fit(sentences, progress=False)


def test_vectors_equal_gensim_alone_with_the_same_arguments(sentences, trained):
    from gensim.models import Word2Vec as GensimWord2Vec

    reference = GensimWord2Vec(sentences, sg=1, negative=5, **PARAMS)
    assert trained.vocabulary == reference.wv.index_to_key
    np.testing.assert_array_equal(trained.keyed_vectors.vectors, reference.wv.vectors)


def test_a_text_file_trains_through_gensims_corpus_file_path(tmp_path, sentences):
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(" ".join(s) for s in sentences), encoding="utf-8")
    model = methods.Word2Vec(**PARAMS).fit(str(path), progress=False)
    assert model.model.corpus_total_words == sum(len(s) for s in sentences)
    assert "the" in model.keyed_vectors


def test_the_embedding_maps_ids_to_the_trained_vectors(trained):
    ids = trained.ids([["the", "of", "zzz-not-a-word"], ["the"]])
    index = trained.keyed_vectors.key_to_index
    np.testing.assert_array_equal(ids, [[index["the"] + 2, index["of"] + 2, 1], [index["the"] + 2, 0, 0]])
    vectors = keras.ops.convert_to_numpy(trained.as_embedding()(ids))
    np.testing.assert_allclose(vectors[0, 0], trained.keyed_vectors["the"], rtol=1e-6)
    np.testing.assert_allclose(vectors[0, 2], trained.keyed_vectors.vectors.mean(0), rtol=1e-5)  # [UNK]
    np.testing.assert_array_equal(vectors[1, 1], 0.0)  # [PAD]
    lookup = trained.lookup()
    assert int(lookup("the")) == index["the"] + 2 and int(lookup("zzz-not-a-word")) == 1


def test_the_embedding_refuses_ids_outside_its_vocabulary(trained):
    size = len(trained.vocabulary) + 2  # [PAD] and [UNK] come first
    embedding = trained.as_embedding()
    with pytest.raises(ValueError, match=rf"in \[0, {size}\).*Received ids in \[0, {size}\]"):
        embedding(np.array([[2, size, 0]], "int32"))
    with pytest.raises(Exception, match=rf"in \[0, {size}\)"):
        embedding.predict(np.array([[2, size + 5, 0]], "int32"), verbose=0)


@pytest.mark.parametrize("trainable", [True, False])
def test_the_embedding_fine_tunes_only_when_trainable(trained, trainable):
    embedding = trained.as_embedding(trainable=trainable)
    inputs = keras.Input((None,), dtype="int32")
    outputs = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling1D()(embedding(inputs)))
    classifier = keras.Model(inputs, outputs)
    classifier.compile(keras.optimizers.AdamW(1e-2), "binary_crossentropy")
    ids = trained.ids([["the", "of"], ["and", "in"], ["a", "the"], ["of", "and"]])
    before = np.array(embedding.weights[0])
    classifier.fit(ids, np.array([0, 1, 0, 1]), epochs=2, verbose=0)
    assert np.allclose(before, np.array(embedding.weights[0])) != trainable


@pytest.mark.large
@pytest.mark.savedmodel
def test_the_embedding_exports_and_serves_token_ids_in_a_fresh_process(tmp_path, trained):
    embedding = trained.as_embedding()
    path = keras_ssl.export(embedding, tmp_path / "word2vec")
    ids = trained.ids([["the", "of", "and"]])
    np.save(tmp_path / "ids.npy", ids)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "np.save(sys.argv[3], m.signatures['serve'](tf.constant(np.load(sys.argv[2])))['features'].numpy())\n"
    )
    subprocess.run([sys.executable, "-c", script, path, tmp_path / "ids.npy", tmp_path / "out.npy"], check=True)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), keras.ops.convert_to_numpy(embedding(ids)), atol=1e-6)
    np.testing.assert_allclose(keras_ssl.load(path).predict(ids, verbose=0), np.load(tmp_path / "out.npy"), atol=1e-6)


def test_evaluate_reports_gensims_intrinsic_scores(trained):
    scores = trained.evaluate()
    assert set(scores) == {"wordsim353_spearman", "wordsim353_pearson", "wordsim353_oov", "analogy_accuracy"}
    assert 0.0 <= scores["wordsim353_oov"] <= 100.0 and 0.0 <= scores["analogy_accuracy"] <= 1.0


def test_bad_input_gets_clear_errors(tmp_path, sentences):
    model = methods.Word2Vec(**PARAMS)
    with pytest.raises(ValueError, match="corpus is empty"):
        model.fit([], progress=False)
    with pytest.raises(ValueError, match="one-shot iterator"):
        model.fit(iter(sentences), progress=False)
    with pytest.raises(ValueError, match="lists of string tokens.*Received a first sentence of type str"):
        model.fit(["the cat sat"], progress=False)
    with pytest.raises(ValueError, match="not a file"):
        model.fit(str(tmp_path / "missing.txt"), progress=False)
    (tmp_path / "blank.txt").write_text("\n  \n")
    with pytest.raises(ValueError, match="corpus is empty.*blank.txt"):
        model.fit(str(tmp_path / "blank.txt"), progress=False)
    with pytest.raises(ValueError, match="No word occurs at least min_count=1000 times"):
        methods.Word2Vec(**{**PARAMS, "min_count": 1000}).fit(sentences[:20], progress=False)
    with pytest.raises(ValueError, match="`vector_size` must be a positive integer. Received: vector_size=0"):
        methods.Word2Vec(vector_size=0)
    with pytest.raises(ValueError, match="not been trained"):
        _ = methods.Word2Vec().keyed_vectors
    with pytest.raises(ValueError, match="Sentence 0 has 3 tokens; max_length is 2 .or pass truncate=True"):
        methods.Word2Vec(**PARAMS).fit(sentences, progress=False).ids([["a", "b", "c"]], max_length=2)
