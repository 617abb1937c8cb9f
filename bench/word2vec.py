"""Word2Vec on WikiText-2: keras_ssl's wrapper vs bare gensim, side by side.

    python bench/word2vec.py            # -> bench/results/word2vec_wikitext2_cpu.json
    python bench/word2vec.py --bundle word2vec_sgns100_wikitext2   # scores a preset's or bundle's vectors

Trains skip-gram vectors (the issue's defaults: 100 dims, window 5, 5 negatives,
min_count 5, 5 epochs) on the WikiText-2 validation split through
`keras_ssl.methods.Word2Vec` and through `gensim.models.Word2Vec` directly:

- quality: WordSim-353 Spearman and Google-analogy accuracy (gensim's test
  data) of both, trained with workers=1 and one seed, which makes gensim
  deterministic, so the two must be equal;
- speed: words/s of both with all cores, alternating runs (`--repeats` each),
  reporting the median of each and their ratio.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data", "wikitext-2", "wiki.valid.tokens")
PARAMS = dict(vector_size=100, window=5, sg=1, negative=5, min_count=5, epochs=5, seed=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DATA)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=os.path.join(HERE, "results", "word2vec_wikitext2_cpu.json"))
    parser.add_argument("--bundle", help="score the vectors of this preset, bundle or archive instead, and stop")
    args = parser.parse_args()
    if args.bundle:
        return score_bundle(args.bundle)

    import gensim
    from gensim.models import Word2Vec as GensimWord2Vec

    from keras_ssl.methods import Word2Vec
    from keras_ssl.trainers.gensim import intrinsic_scores

    # Quality, deterministic: one worker, same seed, the fast corpus_file path for both.
    ours = Word2Vec(**PARAMS, workers=1).fit(args.data, progress=False)
    reference = GensimWord2Vec(corpus_file=args.data, **PARAMS, workers=1)
    ours_scores = ours.evaluate()
    reference_scores = intrinsic_scores(reference.wv)
    identical = bool((ours.keyed_vectors.vectors == reference.wv.vectors).all())
    print("keras_ssl:", ours_scores, "\ngensim:   ", reference_scores, "\nidentical vectors:", identical, flush=True)

    # Speed: all cores, alternating so both see the same machine state.
    workers = os.cpu_count()
    words = ours.model.corpus_total_words * PARAMS["epochs"]
    timings = {"keras_ssl": [], "gensim": []}
    for _ in range(args.repeats):
        for name in timings:
            t0 = time.perf_counter()
            if name == "keras_ssl":
                Word2Vec(**PARAMS, workers=workers).fit(args.data, progress=False)
            else:
                GensimWord2Vec(corpus_file=args.data, **PARAMS, workers=workers)
            timings[name].append(words / (time.perf_counter() - t0))
    speed = {name: statistics.median(values) for name, values in timings.items()}
    print({k: f"{v:,.0f} words/s" for k, v in speed.items()}, flush=True)

    result = {
        "device": f"CPU ({os.cpu_count()} cores, {platform.machine()})",
        "gensim_version": gensim.__version__,
        "corpus": "WikiText-2 validation split (wiki.valid.tokens)",
        "corpus_words": ours.model.corpus_total_words,
        "vocabulary": len(ours.vocabulary),
        "params": PARAMS,
        "quality_workers": 1,
        "keras_ssl": ours_scores,
        "gensim": reference_scores,
        "identical_vectors": identical,
        "speed_workers": workers,
        "words_per_second": {"keras_ssl": speed["keras_ssl"], "gensim": speed["gensim"], "runs": timings},
        "speed_ratio": speed["keras_ssl"] / speed["gensim"],
    }
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    print(f"speed ratio {result['speed_ratio']:.3f} -> {args.output}")


def score_bundle(name_or_path):
    """WordSim-353 and analogy scores of the vectors a Word2Vec preset or bundle ships (rows 2.. are its words)."""
    import keras
    from gensim.models import KeyedVectors

    import keras_ssl
    from keras_ssl.trainers.gensim import intrinsic_scores

    encoder, lookup = keras_ssl.load(name_or_path), keras_ssl.load_tokenizer(name_or_path)
    words = lookup.get_vocabulary()[2:]  # 0: padding, 1: unknown
    matrix = keras.ops.convert_to_numpy(encoder.get_layer("embedding").embeddings)[2:]
    vectors = KeyedVectors(matrix.shape[1])
    vectors.add_vectors(words, matrix)
    scores = intrinsic_scores(vectors)
    print(json.dumps({"bundle": str(name_or_path), "vocabulary": len(words), **scores}, indent=2))
    return scores


if __name__ == "__main__":
    main()
