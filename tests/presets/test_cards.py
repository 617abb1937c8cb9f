"""Zoo cards: the packaged ones parse and cover the methods; the parser refuses bad cards; names resolve."""

import json
import os

import pytest

from keras_ssl import methods, presets
from keras_ssl.presets import render
from keras_ssl.testing import REPO_ROOT

# Files, cards and text only: no backend in play (see conftest.py).
pytestmark = pytest.mark.any_backend


def valid_card(**changes):
    card = {
        "format": "keras_ssl.preset/1",
        "name": "toy_mlp_digits",
        "aliases": ["toy"],
        "description": "a toy",
        "method": "simclr",
        "backbone": {"class_name": "MLP", "config": {}},
        "input": {"kind": "vectors", "shape": [64]},
        "recipe": {"epochs": 1},
        "metrics": {"knn": 0.5},
        "weights": {
            "file": "toy.tar.gz",
            "sha256": "a" * 64,
            "size": 10,
            "urls": ["https://example.invalid/toy.tar.gz"],
        },
    }
    card.update(changes)
    return card


def write_zoo(root, *cards):
    for card in cards:
        os.makedirs(root / card["name"], exist_ok=True)
        (root / card["name"] / "preset.json").write_text(json.dumps(card))
    return root


def test_packaged_cards_cover_the_methods():
    names = presets.list_presets() + presets.list_recipes()
    cards = [presets.get_preset(name) for name in names]
    covered = {card.method for card in cards}
    assert {"simclr", "moco", "byol", "mae", "masked_lm", "word2vec"} <= covered
    assert set(methods.list_methods()) <= covered | {"word2vec"}
    for card in cards:
        assert card.name == os.path.basename(card.directory)
        parts = card.name.split("_")
        assert card.name.startswith(card.method) and len(parts) >= 3, card.name


def test_alias_resolves_to_the_simclr_resnet18_cifar10_preset():
    card = presets.get_preset("simclr_resnet")
    assert card.name == "simclr_resnet18_cifar10"
    assert card.method == "simclr" and card.backbone["class_name"] == "ResNet18"
    assert "simclr_resnet" in presets.list_presets(include_aliases=True)
    assert "simclr_resnet" not in presets.list_presets()


def test_unknown_name_lists_close_matches():
    with pytest.raises(presets.UnknownPresetError, match="Did you mean: .*simclr_resnet") as info:
        presets.get_preset("simclr_resnt")
    assert "file://" in str(info.value)
    with pytest.raises(presets.UnknownPresetError):
        presets.load("no_such_preset_anywhere")


def test_presets_have_weights_and_recipes_say_how_to_train_them():
    assert all(presets.get_preset(n).weights is not None for n in presets.list_presets())
    recipes = presets.list_recipes()
    assert recipes and not set(recipes) & set(presets.list_presets())
    assert all(presets.get_preset(n).weights is None for n in recipes)
    with pytest.raises(
        presets.PresetUnavailableError, match=f"(?s)is a recipe.*keras-ssl pretrain {recipes[0]} --data <"
    ):
        presets.load(recipes[0])


def test_docs_and_model_cards_are_generated_from_the_cards():
    cards = [presets.get_preset(name) for name in presets.list_presets() + presets.list_recipes()]
    with open(REPO_ROOT / "docs" / "zoo.md") as f:
        assert f.read() == render.zoo_markdown(cards), "docs/zoo.md is stale: run `make zoo-docs`"
    for card in cards:
        with open(os.path.join(card.directory, "README.md")) as f:
            assert f.read() == render.model_card_markdown(card), f"{card.name}/README.md is stale: run `make zoo-docs`"
        assert card.name in render.zoo_markdown(cards)
    # Every table row has as many cells as its header (a markdown table with a wrong separator does not render).
    table_rows = [line for line in render.zoo_markdown(cards).splitlines() if line.startswith("| ")]
    assert table_rows and all(row.count(" | ") >= 2 for row in table_rows)
    for header, separator in zip(table_rows, table_rows[1:]):
        if set(separator.replace("|", "").split()) == {"---"}:
            assert separator.count("---") == header.count(" | ") + 1, header


def test_private_zoo_path_adds_and_overrides_cards(tmp_path, monkeypatch):
    write_zoo(tmp_path, valid_card(), valid_card(name="simclr_resnet18_cifar10", aliases=[], description="mine"))
    monkeypatch.setenv(presets.ZOO_PATH_ENV, str(tmp_path))
    assert presets.get_preset("toy").name == "toy_mlp_digits"
    assert presets.get_preset("simclr_resnet18_cifar10").description == "mine"


def test_card_name_must_match_its_folder(tmp_path, monkeypatch):
    card = valid_card()
    os.makedirs(tmp_path / "other_name")
    (tmp_path / "other_name" / "preset.json").write_text(json.dumps(card))
    monkeypatch.setenv(presets.ZOO_PATH_ENV, str(tmp_path))
    with pytest.raises(presets.InvalidCardError, match="must match its folder"):
        presets.list_presets()


def test_parse_card_reads_every_field():
    card = presets.parse_card(json.dumps(valid_card()))
    assert card.weights == presets.Weights("toy.tar.gz", "a" * 64, 10, ("https://example.invalid/toy.tar.gz",))
    assert card.aliases == ("toy",) and card.input_kind == "vectors" and card.metrics == {"knn": 0.5}
    assert "keras-ssl pretrain toy_mlp_digits" in card.pretrain_command


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps(valid_card(format="keras_ssl.preset/9")), "expected format"),
        (json.dumps({k: v for k, v in valid_card().items() if k != "method"}), "missing field 'method'"),
        (json.dumps(valid_card(name="Bad Name")), "lowercase words"),
        (json.dumps(valid_card(extra=1)), "unknown field"),
        (json.dumps(valid_card(input={"kind": "audio", "shape": [3]})), "input.kind"),
        (json.dumps(valid_card(input={"kind": "images", "shape": [0, 3]})), "input.shape"),
        (json.dumps(valid_card(metrics={"knn": "high"})), "finite number"),
        (json.dumps(valid_card()).replace("0.5", "NaN"), "invalid JSON"),
        (json.dumps(valid_card(weights={"file": "../x.tar.gz", "sha256": "a" * 64, "size": 1})), "plain file name"),
        (json.dumps(valid_card(weights={"file": "x.tar.gz", "sha256": "abc", "size": 1})), "64 lowercase hex"),
        (json.dumps(valid_card(weights={"file": "x.tar.gz", "sha256": "a" * 64, "size": -1})), "positive byte count"),
        (
            json.dumps(valid_card(weights={"file": "x.tar.gz", "sha256": "a" * 64, "size": 1, "urls": ["ftp://x"]})),
            "URLs",
        ),
        (b"\xff\xfe", "UTF-8"),
        (b" " * (presets.cards.MAX_CARD_BYTES + 1), "at most"),
    ],
)
def test_parse_card_refuses_bad_cards(text, message):
    with pytest.raises(presets.InvalidCardError, match=message):
        presets.parse_card(text, source="card.json")
