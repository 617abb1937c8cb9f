"""Text readers (WikiText-2, SST-2) and SST-2's sentence recovery, on the real files and on crafted bad ones."""

import pytest

from keras_ssl.data import drop_subphrases, load_sst2, load_wikitext
from keras_ssl.testing import shared_data_file


def test_wikitext_lines_keep_unk_as_the_tokenizers_unknown_token():
    lines = load_wikitext(shared_data_file("wikitext-2/wiki.valid.tokens"))
    assert len(lines) < 3760  # the published line count includes blank lines, which are dropped
    assert all(line and line == line.strip() for line in lines)
    assert any("[UNK]" in line for line in lines) and not any("<unk>" in line for line in lines)


def test_empty_or_missing_wikitext_is_refused(tmp_path):
    (tmp_path / "blank.tokens").write_text("\n \n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="holds no text"):
        load_wikitext(tmp_path / "blank.tokens")
    with pytest.raises(ValueError, match="not a file"):
        load_wikitext(tmp_path / "missing.tokens")


def test_sst2_splits_have_the_published_sizes():
    sentences, labels = load_sst2(shared_data_file("sst2/train.tsv"))
    assert (len(sentences), sum(labels)) == (67349, 37569)
    dev_sentences, dev_labels = load_sst2(shared_data_file("sst2/dev.tsv"))
    assert (len(dev_sentences), sum(dev_labels)) == (872, 444)
    assert all(s == s.strip() for s in dev_sentences)


def test_sst2_refuses_the_unlabelled_test_file_and_bad_rows(tmp_path):
    with pytest.raises(ValueError, match=r"header sentence<TAB>label. Received header \['index', 'sentence'\]"):
        load_sst2(shared_data_file("sst2/test.tsv"))
    (tmp_path / "bad.tsv").write_text("sentence\tlabel\na fine film \t1\nno label here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 3: expected a sentence and a 0/1 label"):
        load_sst2(tmp_path / "bad.tsv")


def test_drop_subphrases_keeps_phrases_no_longer_phrase_contains():
    phrases = ["the film", "a b c", "b c", "the film", "c d", "b", "d e", "x", "film"]
    # "b c" and "b" lie inside "a b c"; "film" inside "the film"; "c d" is not a run of "a b c" or "d e".
    assert drop_subphrases(phrases) == ["the film", "a b c", "c d", "d e", "x"]
    assert drop_subphrases(["  spaced   out ", "spaced out", ""]) == ["spaced out"]


def test_sst2_training_phrases_reduce_to_its_sentences():
    sentences, _ = load_sst2(shared_data_file("sst2/train.tsv"))
    kept = drop_subphrases(sentences)
    assert len(kept) == 6885  # SST's training split has 6,920 sentences; a few are parts of others
    assert sum(len(s.split()) for s in kept) == 133441
    padded = [f" {k} " for k in kept]
    for phrase in sentences[::400]:  # every phrase is a run of words of a kept sentence
        assert any(f" {' '.join(phrase.split())} " in k for k in padded), phrase
