"""WordPiece tokenizer: training, fixed special ids, padding, save/load, bad input."""

import numpy as np
import pytest

from keras_ssl.data import SPECIAL_TOKENS, WordPieceTokenizer
from keras_ssl.testing import shared_data_file

# Files, cards and text only: no backend in play (see conftest.py).
pytestmark = pytest.mark.any_backend


@pytest.fixture(scope="module")
def lines():
    with open(shared_data_file("wikitext-2/wiki.valid.tokens"), encoding="utf-8") as f:
        return [line.strip() for line in f.readlines()[:800] if line.strip()]


@pytest.fixture(scope="module")
def tokenizer(lines):
    return WordPieceTokenizer.train(lines, vocabulary_size=600)


def test_special_tokens_have_fixed_ids(tokenizer):
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert 100 < tokenizer.vocabulary_size <= 600


def test_encode_adds_cls_sep_and_pads(tokenizer):
    ids = tokenizer.encode(["the lobster", "a"], max_length=8)
    assert ids.dtype == np.int32 and ids.shape == (2, 8)
    assert ids[0, 0] == 2 and ids[1, 0] == 2  # [CLS]
    assert ids[1, 2] == 3 and (ids[1, 3:] == 0).all()  # "a" [SEP] [PAD]...
    assert tokenizer.decode(ids[0]) == "the lobster"
    assert "##" in "".join(tokenizer.tokenize("unbelievablyhomarusgammarus"))  # rare words split into pieces


def test_truncation_or_a_clear_error(tokenizer, lines):
    long = [" ".join(lines[:3])]
    assert tokenizer.encode(long, max_length=16)[0, -1] == 3  # cut, still ends with [SEP]
    with pytest.raises(ValueError, match="Text 0 has more than max_length=16 tokens"):
        tokenizer.encode(long, max_length=16, truncate=False)


def test_save_and_load_give_the_same_ids(tmp_path, tokenizer, lines):
    path = tokenizer.save(tmp_path / "tok")
    assert path.endswith("tokenizer.json")
    again = WordPieceTokenizer.load(tmp_path / "tok")
    np.testing.assert_array_equal(again.encode(lines[:20], 32), tokenizer.encode(lines[:20], 32))


def test_training_from_a_file(tmp_path, lines):
    (tmp_path / "corpus.txt").write_text("\n".join(lines), encoding="utf-8")
    assert WordPieceTokenizer.train(tmp_path / "corpus.txt", vocabulary_size=300).vocabulary_size <= 300


def test_bad_input_gets_clear_errors(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="corpus is empty"):
        WordPieceTokenizer.train([], vocabulary_size=100)
    with pytest.raises(ValueError, match="corpus is empty"):
        WordPieceTokenizer.train(["  ", ""], vocabulary_size=100)
    with pytest.raises(ValueError, match="must exceed the 5 special tokens"):
        WordPieceTokenizer.train(["a b c"], vocabulary_size=5)
    with pytest.raises(ValueError, match="single string"):
        tokenizer.encode("the lobster")
    with pytest.raises(ValueError, match="No tokenizer at"):
        WordPieceTokenizer.load(tmp_path / "missing")
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a valid tokenizer file"):
        WordPieceTokenizer.load(tmp_path)
