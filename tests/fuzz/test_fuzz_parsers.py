"""The fuzz harness as a fast, deterministic test: the corpus and 2000 byte mutations of it.

Only the documented errors may come out of the parsers; `TestOneInput`
swallows those, so any exception here is a parser bug (or a harness bug).
"""

import json
import os
import pathlib
import random

import fuzz_parsers
import pytest

from keras_ssl.bundle import InvalidBundleError
from keras_ssl.presets.cards import InvalidCardError

# Files, cards and text only: no backend in play (see conftest.py).
pytestmark = pytest.mark.any_backend

SEEDS = {name: pathlib.Path(fuzz_parsers.CORPUS, name).read_bytes() for name in sorted(os.listdir(fuzz_parsers.CORPUS))}


def mutate(rng, data):
    data = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        operation = rng.randrange(5)
        position = rng.randint(0, len(data))
        if operation == 0 and data:  # flip a byte
            data[min(position, len(data) - 1)] = rng.randrange(256)
        elif operation == 1:  # insert interesting bytes
            data[position:position] = rng.choice(
                [b"\x00", b"\xff", b'"', b"[", b"{", b"NaN", b"-Infinity", b"1e999", b"\\ud800", b"null"]
            )
        elif operation == 2:  # delete a run
            del data[position : position + rng.randint(1, 16)]
        elif operation == 3:  # truncate
            del data[position:]
        else:  # splice in a piece of another seed
            other = rng.choice(list(SEEDS.values()))
            start = rng.randint(0, len(other))
            data[position:position] = other[start : start + rng.randint(1, 64)]
    return bytes(data)


def test_the_corpus_has_valid_and_broken_seeds():
    assert fuzz_parsers.parse_card(SEEDS["card_valid.json"]).name == "simclr_resnet18_cifar10"
    assert fuzz_parsers.parse_metadata(SEEDS["metadata_valid.json"])["output_shape"] == [None, 64]
    with pytest.raises(InvalidCardError):
        fuzz_parsers.parse_card(SEEDS["card_broken_fields.json"])
    with pytest.raises(InvalidBundleError):
        fuzz_parsers.parse_metadata(SEEDS["metadata_broken_fields.json"])


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_every_corpus_file(name):
    fuzz_parsers.TestOneInput(SEEDS[name])


def test_random_mutations_raise_only_the_documented_errors():
    rng = random.Random(0)
    seeds = list(SEEDS.values())
    for _ in range(2000):
        fuzz_parsers.TestOneInput(mutate(rng, rng.choice(seeds)))


def test_the_harness_lets_undocumented_errors_escape(monkeypatch):
    def broken(text, source=None):
        raise KeyError("a parser bug")

    monkeypatch.setattr(fuzz_parsers, "parse_metadata", broken)
    with pytest.raises(KeyError, match="a parser bug"):
        fuzz_parsers.TestOneInput(SEEDS["metadata_valid.json"])


def test_a_metric_too_large_for_a_float_is_an_invalid_card():
    # Found by `make fuzz`: 10**400 is a valid JSON integer; the card must be refused with InvalidCardError,
    # not OverflowError.
    text = SEEDS["card_valid.json"].replace(b'"cifar10_test_knn": 0.38', b'"cifar10_test_knn": 1' + b"0" * 400)
    with pytest.raises(InvalidCardError, match="metrics.cifar10_test_knn must be a finite number"):
        fuzz_parsers.parse_card(text)


@pytest.mark.parametrize("field, value", [("name", "simclr_resnet18_cifar10\n"), ("sha256", "0" * 64 + "\n")])
def test_a_trailing_newline_is_an_invalid_card(field, value):
    card = json.loads(SEEDS["card_valid.json"])
    (card["weights"] if field == "sha256" else card)[field] = value
    with pytest.raises(InvalidCardError):
        fuzz_parsers.parse_card(json.dumps(card))
