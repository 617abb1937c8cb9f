"""gensim, the trainer of `methods.Word2Vec`: training and its intrinsic evaluations.

Imported lazily by the method, like the other trainers, so `import keras_ssl`
does not load gensim.
"""


def train_word2vec(params, corpus, epochs_bar=True):
    """A trained `gensim.models.Word2Vec`; `corpus` is a file path (str) or token lists.

    Raises RuntimeError as gensim does when no word reaches min_count.
    """
    from gensim.models import Word2Vec

    kwargs = dict(params)
    if isinstance(corpus, str):
        kwargs["corpus_file"] = corpus
    else:
        kwargs["sentences"] = corpus
    kwargs["callbacks"] = [_progress_bar(params["epochs"])] if epochs_bar else []
    return Word2Vec(**kwargs)


def intrinsic_scores(keyed_vectors):
    """WordSim-353 correlations and Google-analogy accuracy, on the test data gensim ships."""
    from gensim.test.utils import datapath

    pearson, spearman, oov = keyed_vectors.evaluate_word_pairs(datapath("wordsim353.tsv"))
    analogy, _ = keyed_vectors.evaluate_word_analogies(datapath("questions-words.txt"))
    return {
        "wordsim353_spearman": float(spearman.statistic if hasattr(spearman, "statistic") else spearman[0]),
        "wordsim353_pearson": float(pearson.statistic if hasattr(pearson, "statistic") else pearson[0]),
        "wordsim353_oov": float(oov),
        "analogy_accuracy": float(analogy),
    }


def _progress_bar(epochs):
    """A gensim callback that advances a Keras progress bar once per epoch."""
    import keras
    from gensim.models.callbacks import CallbackAny2Vec

    class ProgressBar(CallbackAny2Vec):
        def __init__(self):
            self.bar, self.done = keras.utils.Progbar(epochs, unit_name="epoch"), 0

        def on_epoch_end(self, model):
            self.done += 1
            self.bar.update(self.done)

    return ProgressBar()
