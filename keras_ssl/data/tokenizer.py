"""A WordPiece tokenizer trained and run by Hugging Face `tokenizers` (Rust, multi-threaded).

Special tokens have fixed ids so models can rely on them: [PAD]=0, [UNK]=1,
[CLS]=2, [SEP]=3, [MASK]=4. Encoded sentences are `[CLS] tokens [SEP]`,
padded with [PAD] to a common length.
"""

import json
import os

import numpy as np

from keras_ssl.utils.bundle_layout import ASSETS, TOKENIZER_FILE

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID, MASK_ID = range(len(SPECIAL_TOKENS))
FIRST_WORD_ID = len(SPECIAL_TOKENS)  # ids below it are padding and special tokens
MAX_TOKENIZER_BYTES = 64 * 2**20


class WordPieceTokenizer:
    """BERT's WordPiece: lower-cased, split on whitespace and punctuation, then sub-words.

    Build one with `WordPieceTokenizer.train(corpus, vocabulary_size)` or
    `WordPieceTokenizer.load(path)`; `save(path)` writes `tokenizer.json`
    (the `tokenizers` format, readable by any HF tokenizer).
    """

    def __init__(self, tokenizer):
        for expected_id, token in enumerate(SPECIAL_TOKENS):
            if tokenizer.token_to_id(token) != expected_id:
                raise ValueError(
                    f"Expected the special token {token} at id {expected_id}. Received a tokenizer that maps it to "
                    f"{tokenizer.token_to_id(token)}"
                )
        from tokenizers import processors

        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)],
        )
        self._tokenizer = tokenizer

    @classmethod
    def train(cls, corpus, vocabulary_size=8000, min_frequency=2, lowercase=True):
        """Learns a vocabulary from text files (paths) or an iterable of strings."""
        from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

        if vocabulary_size <= len(SPECIAL_TOKENS):
            raise ValueError(
                f"`vocabulary_size` must exceed the {len(SPECIAL_TOKENS)} special tokens. Received: {vocabulary_size}"
            )
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=int(vocabulary_size),
            min_frequency=int(min_frequency),
            special_tokens=list(SPECIAL_TOKENS),
            show_progress=False,
        )
        if isinstance(corpus, (str, os.PathLike)):
            corpus = [corpus]
        corpus = list(corpus)
        if corpus and all(isinstance(c, (str, os.PathLike)) and os.path.isfile(c) for c in corpus):
            if not any(os.path.getsize(c) for c in corpus):
                raise ValueError(f"The corpus is empty: {[os.fspath(c) for c in corpus]} hold no text.")
            tokenizer.train([os.fspath(c) for c in corpus], trainer)
        else:
            if not any(isinstance(t, str) and t.strip() for t in corpus):
                raise ValueError("The corpus is empty: expected text files or strings with words in them.")
            tokenizer.train_from_iterator(corpus, trainer)
        return cls(tokenizer)

    @classmethod
    def load(cls, path):
        """Reads `tokenizer.json` from a file, a directory holding one, or a bundle written by `keras_ssl.export`."""
        from tokenizers import Tokenizer

        path = os.fspath(path)
        if os.path.isdir(path):
            in_bundle = os.path.join(path, ASSETS, TOKENIZER_FILE)
            path = in_bundle if os.path.isfile(in_bundle) else os.path.join(path, TOKENIZER_FILE)
        if not os.path.isfile(path):
            raise ValueError(f"No tokenizer at {path}")
        if os.path.getsize(path) > MAX_TOKENIZER_BYTES:
            raise ValueError(f"Refusing {path}: larger than {MAX_TOKENIZER_BYTES} bytes.")
        try:
            return cls(Tokenizer.from_file(path))
        except Exception as error:  # tokenizers raises its own Exception type on bad JSON
            if isinstance(error, ValueError) and "special token" in str(error):
                raise
            raise ValueError(f"{path} is not a valid tokenizer file: {error}") from error

    def save(self, path):
        """Writes `tokenizer.json` into the directory `path` (created if needed); returns the file path."""
        os.makedirs(path, exist_ok=True)
        target = os.path.join(os.fspath(path), TOKENIZER_FILE)
        partial = target + ".partial"
        self._tokenizer.save(partial)
        os.replace(partial, target)
        return target

    @property
    def vocabulary_size(self):
        return self._tokenizer.get_vocab_size()

    def token_to_id(self, token):
        return self._tokenizer.token_to_id(token)

    def tokenize(self, text):
        """The WordPiece tokens of one string (no special tokens)."""
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def encode(self, texts, max_length=128, truncate=True):
        """Strings -> (len(texts), max_length) int32 ids: [CLS] tokens [SEP] then [PAD].

        With `truncate=False` a text longer than `max_length` raises an error
        naming it instead of being cut.
        """
        if isinstance(texts, str):
            raise ValueError("Expected a list of strings. Received a single string: wrap it in a list.")
        if max_length < 3:
            raise ValueError(f"`max_length` must leave room for [CLS], a token and [SEP]. Received: {max_length}")
        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise ValueError(
                f"Expected a list of strings. Received items of types {sorted({type(t).__name__ for t in texts})}"
            )
        # Padding and truncation run in Rust, over all texts in parallel.
        self._tokenizer.enable_truncation(max_length)
        self._tokenizer.enable_padding(length=max_length, pad_id=PAD_ID, pad_token="[PAD]")
        try:
            encodings = self._tokenizer.encode_batch(texts)
        finally:
            self._tokenizer.no_truncation()
            self._tokenizer.no_padding()
        if not truncate:
            for i, encoding in enumerate(encodings):
                if encoding.overflowing:
                    raise ValueError(f"Text {i} has more than max_length={max_length} tokens with [CLS] and [SEP].")
        return np.array([e.ids for e in encodings], dtype="int32").reshape(len(texts), max_length)

    def pack(self, texts, max_length=128):
        """Concatenates the texts' tokens and cuts them into `[CLS] chunk [SEP]` rows of `max_length`.

        The usual input for masked-language-model pretraining: no padding
        except in the last row. Returns an int32 array (rows, max_length).
        """
        if max_length < 3:
            raise ValueError(f"`max_length` must leave room for [CLS], a token and [SEP]. Received: {max_length}")
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        stream = np.fromiter((i for e in encodings for i in e.ids), dtype="int32")
        if stream.size == 0:
            raise ValueError("The texts hold no tokens.")
        chunk = max_length - 2
        rows = -(-stream.size // chunk)
        body = np.full((rows * chunk,), PAD_ID, dtype="int32")
        body[: stream.size] = stream
        out = np.full((rows, max_length), PAD_ID, dtype="int32")
        out[:, 0], out[:, 1:-1] = CLS_ID, body.reshape(rows, chunk)
        lengths = np.minimum(stream.size - np.arange(rows) * chunk, chunk)
        out[np.arange(rows), lengths + 1] = SEP_ID
        return out

    def decode(self, ids):
        """Ids (one sequence) -> text, special tokens dropped."""
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def get_config(self):
        """The tokenizer as JSON-ready data (for saving next to a model)."""
        return json.loads(self._tokenizer.to_str())
