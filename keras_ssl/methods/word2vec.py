"""Word2Vec (Mikolov et al., 2013) trained by gensim, bridged into Keras.

gensim's optimised C routines train the vectors on the CPU; keras_ssl adds
input checks, a progress bar, the standard intrinsic evaluations and a Keras
embedding built from the vectors, which fine-tunes inside any Keras model and
exports like every other encoder.

Token ids used by the Keras side: 0 is padding ([PAD], a zero vector), 1 is
an unknown word ([UNK], the mean vector), and the word of gensim index i has
id i + 2, which is also what `lookup()` (a `keras.layers.StringLookup`) gives.
"""

import os

import numpy as np

from keras_ssl.methods.registry import register_method

PAD, UNK = "[PAD]", "[UNK]"
NUM_SPECIAL = 2


@register_method("word2vec", data="text")
class Word2Vec:
    """Skip-gram or CBOW word vectors with negative sampling, trained by gensim.

    A registered method that is not a Keras model: gensim trains it (see
    `keras_ssl.trainers.gensim`), and `as_embedding()` is its Keras encoder.

    Arguments are gensim's (`gensim.models.Word2Vec`), with its defaults
    except `sg=1` (skip-gram) and `workers` (default: all CPU cores). Extra
    keyword arguments (e.g. `sample`, `alpha`, `hs`) go to gensim unchanged,
    so a model trained here equals one trained by gensim with the same
    arguments (bit for bit with `workers=1` and a fixed PYTHONHASHSEED;
    several workers make gensim itself nondeterministic).
    """

    def __init__(
        self, vector_size=100, window=5, sg=1, negative=5, min_count=5, epochs=5, workers=None, seed=1, **gensim_kwargs
    ):
        for name, value in (
            ("vector_size", vector_size),
            ("window", window),
            ("min_count", min_count),
            ("epochs", epochs),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        self.params = dict(
            vector_size=vector_size,
            window=window,
            sg=int(sg),
            negative=negative,
            min_count=min_count,
            epochs=epochs,
            workers=int(workers or os.cpu_count() or 1),
            seed=seed,
            **gensim_kwargs,
        )
        self.model = None

    # --- training ---------------------------------------------------------------

    def fit(self, corpus, progress=True):
        """Trains on `corpus`: a path to a text file (one sentence per line, tokens
        separated by spaces; read by gensim's fast `corpus_file` path) or a
        re-iterable collection of token lists (a list, or an object whose
        `__iter__` starts over). Returns self.
        """
        from keras_ssl.trainers.gensim import train_word2vec

        if isinstance(corpus, (str, os.PathLike)):
            path = os.fspath(corpus)
            if not os.path.isfile(path):
                raise ValueError(
                    f"Expected a text file or a collection of token lists. Received a path that is not a file: {path}"
                )
            if os.path.getsize(path) == 0 or not _has_tokens(path):
                raise ValueError(f"The corpus is empty: {path} holds no tokens.")
            corpus = path
        else:
            _check_token_lists(corpus)
        # gensim trains as soon as it gets the corpus; an empty vocabulary raises RuntimeError there.
        try:
            self.model = train_word2vec(self.params, corpus, epochs_bar=progress)
        except RuntimeError as error:
            if "vocabulary" not in str(error):
                raise
            raise ValueError(
                f"No word occurs at least min_count={self.params['min_count']} times in the corpus: lower `min_count` "
                "or give more text."
            ) from error
        return self

    @property
    def keyed_vectors(self):
        """The trained `gensim.models.KeyedVectors`."""
        if self.model is None:
            raise ValueError("This Word2Vec has not been trained yet: call fit(corpus) first.")
        return self.model.wv

    @property
    def vocabulary(self):
        """Words in id order, without the special tokens (word i has id i + 2)."""
        return list(self.keyed_vectors.index_to_key)

    # --- evaluation -------------------------------------------------------------

    def evaluate(self):
        """gensim's intrinsic evaluations on the test data it ships.

        Returns a dict: `wordsim353_spearman` and `wordsim353_pearson`
        (word-pair similarity against human judgements), `wordsim353_oov`
        (percent of pairs with an unknown word, scored as gensim does, i.e.
        skipped), and `analogy_accuracy` on the Google analogy set (pairs
        with unknown words skipped).
        """
        from keras_ssl.trainers.gensim import intrinsic_scores

        return intrinsic_scores(self.keyed_vectors)

    # --- the Keras side -------------------------------------------------------------

    def embedding_matrix(self):
        """(vocabulary + 2, vector_size) float32: [PAD] zeros, [UNK] the mean vector, then the words."""
        vectors = np.asarray(self.keyed_vectors.vectors, dtype="float32")
        return np.concatenate([np.zeros((1, vectors.shape[1]), "float32"), vectors.mean(0, keepdims=True), vectors])

    def ids(self, sentences, max_length=None, truncate=False):
        """Token lists -> a (num_sentences, length) int32 array of ids, padded with 0.

        Unknown words get 1. Sentences longer than `max_length` raise an error
        unless `truncate=True`, which keeps their first `max_length` tokens.
        """
        index = self.keyed_vectors.key_to_index
        rows = [[index[w] + NUM_SPECIAL if w in index else 1 for w in sentence] for sentence in sentences]
        length = max_length or max((len(r) for r in rows), default=0)
        out = np.zeros((len(rows), length), "int32")
        for i, row in enumerate(rows):
            if len(row) > length and not truncate:
                raise ValueError(f"Sentence {i} has {len(row)} tokens; max_length is {length} (or pass truncate=True).")
            row = row[:length]
            out[i, : len(row)] = row
        return out

    def lookup(self):
        """A `keras.layers.StringLookup` from word strings to the same ids (for tf.data pipelines)."""
        import keras

        return keras.layers.StringLookup(vocabulary=self.vocabulary, mask_token=PAD, oov_token=UNK)

    def as_embedding(self, trainable=True, name="word2vec"):
        """A Keras model from token ids (batch, length) to vectors (batch, length, vector_size).

        Padding (id 0) is masked, so Keras pooling layers downstream skip it.
        Ids outside the vocabulary raise an error naming them
        (`keras_ssl.layers.TokenIdCheck`).
        The model exports with `keras_ssl.export`; its serving signature takes
        int32 token ids.
        """
        import keras

        from keras_ssl.layers.transformer import TokenIdCheck

        matrix = self.embedding_matrix()
        inputs = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        ids = TokenIdCheck(matrix.shape[0], name="token_id_check")(inputs)
        layer = keras.layers.Embedding(
            matrix.shape[0], matrix.shape[1], mask_zero=True, trainable=trainable, name="embedding"
        )
        model = keras.Model(inputs, layer(ids), name=name)
        layer.set_weights([matrix])
        return model


def _check_token_lists(corpus):
    if isinstance(corpus, (bytes, dict)) or not hasattr(corpus, "__iter__"):
        raise ValueError(f"Expected a text file path or a collection of token lists. Received: {type(corpus).__name__}")
    if iter(corpus) is corpus:
        raise ValueError(
            "The corpus is a one-shot iterator, but gensim reads it once per epoch plus once for the vocabulary: "
            "pass a list, or an object whose __iter__ starts over."
        )
    first = next(iter(corpus), None)
    if first is None:
        raise ValueError("The corpus is empty: it has no sentences.")
    if isinstance(first, str) or not all(isinstance(token, str) for token in first):
        raise ValueError(
            "Expected sentences as lists of string tokens, e.g. [['the', 'cat'], ...]. "
            f"Received a first sentence of type {type(first).__name__}: {str(first)[:60]!r}"
        )


def _has_tokens(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return any(line.split() for line in f)
