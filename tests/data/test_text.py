"""Text readers (plain files, WikiText-2, SST-2) and SST-2's sentence recovery, on real files and crafted bad ones."""

import pytest

from keras_ssl.data import drop_subphrases, load_sst2, load_wikitext, read_text_files
from keras_ssl.testing import shared_data_file

# Files, cards and text only: no backend in play (see conftest.py).
pytestmark = pytest.mark.any_backend


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


def test_text_files_give_one_paragraph_per_non_empty_line(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "deep").mkdir()
    (tmp_path / "a.txt").write_text("  first line \n\n second\n", encoding="utf-8")
    (tmp_path / "b" / "deep" / "c.TXT").write_text("third\r\n   \nfourth", encoding="utf-8")
    (tmp_path / "b" / "notes.md").write_text("markdown", encoding="utf-8")
    (tmp_path / ".hidden.txt").write_text("hidden", encoding="utf-8")
    assert read_text_files(tmp_path) == ["first line", "second", "third", "fourth"]
    assert read_text_files(tmp_path / "b" / "notes.md") == ["markdown"]
    assert read_text_files(str(tmp_path / "**" / "*.md")) == ["markdown"]
    assert read_text_files(str(tmp_path / "*.txt")) == ["first line", "second"]


def test_text_files_refuse_nothing_to_read(tmp_path):
    with pytest.raises(ValueError, match="no such path"):
        read_text_files(tmp_path / "missing.txt")
    with pytest.raises(ValueError, match="no file matches"):
        read_text_files(str(tmp_path / "*.txt"))
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match=r"Expected \.txt files below the folder .*images"):
        read_text_files(tmp_path / "images")
    (tmp_path / "blank.txt").write_text("\n  \n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"1 file\(s\) .* all blank"):
        read_text_files(tmp_path / "blank.txt")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8.*latin1.txt"):
        read_text_files(tmp_path / "latin1.txt")
