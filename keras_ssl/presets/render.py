"""docs/zoo.md and each preset's README.md, generated from the cards (`make zoo-docs`).

Generated rather than hand-written so the table can never disagree with the
cards; tests/presets/test_cards.py fails when a committed file is stale.
"""

import os

ZOO_HEADER = """# Zoo

Pretrained encoders by name: `keras_ssl.load("<name>")` returns the encoder as
a Keras model (see docs/export.md for bundles, paths and URLs), and
`keras_ssl.load_tokenizer("<name>")` a text preset's tokenizer. Generated from
`zoo/*/preset.json` by `make zoo-docs`; do not edit by hand.

## Presets

Every preset loads offline: its weights ship inside the package, verified by
their sha256. The metrics were measured with `keras-ssl evaluate` (CIFAR-10
test split; kNN with k=200, T=0.1 over the 50,000 training images; a linear
probe on frozen features) or the text benchmark named in the card; fine-tuning
accuracy at 1% and 10% of the labels is the mean over seeds.
"""

RECIPES_HEADER = """
## Recipes

Cards without published weights: `keras_ssl.list_recipes()` and `keras-ssl
recipes` list them, and `keras-ssl pretrain <name> --data ...` trains one by
its recipe. `keras_ssl.load("<name>")` says so instead of loading.
"""

PRESET_COLUMNS = (
    ("kNN", ("cifar10_test_knn", "sst2_dev_knn")),
    ("linear probe", ("cifar10_test_linear_probe", "cifar10_test_linear_probe_10k", "sst2_dev_linear_probe")),
    ("fine-tune 1%", ("cifar10_finetune_1pct", "sst2_finetune_1pct")),
    ("fine-tune 10%", ("cifar10_finetune_10pct", "sst2_finetune_10pct")),
)


def _metric(card, keys):
    for key in keys:
        if key in card.metrics:
            return f"{card.metrics[key]:.3f}"
    return "-"


def _metrics(card):
    return ", ".join(f"{key} {value:.4g}" for key, value in card.metrics.items()) or "not measured"


def _backbone(card):
    config = ", ".join(f"{key}={value}" for key, value in card.backbone["config"].items())
    return f"{card.backbone['class_name']}({config})"


def _availability(card):
    if card.weights is None:
        return "not published"
    shipped = card.directory and os.path.isfile(os.path.join(card.directory, card.weights.file))
    return f"{'ships with the package' if shipped else 'download'}, {card.weights.size / 2**20:.1f} MiB"


def zoo_markdown(cards):
    published = sorted((c for c in cards if c.weights is not None), key=lambda c: c.name)
    recipes = sorted((c for c in cards if c.weights is None), key=lambda c: c.name)
    columns = " | ".join(title for title, _ in PRESET_COLUMNS)
    lines = [
        ZOO_HEADER,
        f"| name | method | backbone | {columns} | other metrics | size | training cost |",
        "| --- " * (6 + len(PRESET_COLUMNS)) + "|",
    ]
    shown = {key for _, keys in PRESET_COLUMNS for key in keys}
    for card in published:
        name = f"`{card.name}`" + "".join(f"<br>alias `{alias}`" for alias in card.aliases)
        values = " | ".join(_metric(card, keys) for _, keys in PRESET_COLUMNS)
        others = ", ".join(f"{k} {v:.4g}" for k, v in card.metrics.items() if k not in shown) or "-"
        cost = card.recipe.get("cost", "-")
        lines.append(
            f"| {name} | {card.method} | {_backbone(card)} | {values} | {others} | {_availability(card)} | {cost} |"
        )
    lines += [RECIPES_HEADER, "| name | method | backbone | data | measured by its benchmark | train it with |"]
    lines.append("| --- " * 6 + "|")
    for card in recipes:
        data = card.recipe.get("dataset", card.recipe.get("data", ""))
        lines.append(
            f"| `{card.name}` | {card.method} | {_backbone(card)} | {data} | {_metrics(card)} | "
            f"`{card.pretrain_command}` |"
        )
    return "\n".join(lines) + "\n"


def model_card_markdown(card):
    recipe = "\n".join(f"- {key}: `{value}`" for key, value in card.recipe.items())
    metrics = "\n".join(f"- {key}: {value:.4g}" for key, value in card.metrics.items()) or "- not measured yet"
    if card.weights is None:
        weights = f"Not published yet. Train them by the recipe:\n\n    {card.pretrain_command}\n"
    else:
        weights = (
            f"`{card.weights.file}`, {card.weights.size} bytes, sha256 `{card.weights.sha256}` "
            f"({_availability(card)}).\n"
        )
    aliases = f"Aliases: {', '.join(f'`{a}`' for a in card.aliases)}.\n\n" if card.aliases else ""
    notes = f"\n## Notes\n\n{card.notes}\n" if card.notes else ""
    return f"""# {card.name}

{card.description}. Generated from preset.json by `make zoo-docs`.

{aliases}```python
encoder = keras_ssl.load("{card.name}")
```

## Model

- method: `{card.method}`
- backbone: `{_backbone(card)}`
- input: {card.input["kind"]}, shape `{card.input["shape"]}`, {card.input.get("dtype", "")}; \
{card.input.get("preprocessing", "")}

## Recipe

{recipe}

## Metrics

{metrics}

## Weights

{weights}{notes}
License: {card.license or "see the repository"}.
"""


def write_zoo_docs(cards, docs_path):
    """Writes docs/zoo.md and every card's README.md; returns the paths written."""
    written = []
    for path, text in [(docs_path, zoo_markdown(cards))] + [
        (os.path.join(card.directory, "README.md"), model_card_markdown(card)) for card in cards
    ]:
        with open(path, "w") as f:
            f.write(text)
        written.append(path)
    return written


if __name__ == "__main__":  # python -m keras_ssl.presets.render docs/zoo.md
    import sys

    from keras_ssl.presets import get_preset, list_presets, list_recipes

    for path in write_zoo_docs([get_preset(name) for name in list_presets() + list_recipes()], sys.argv[1]):
        print(path)
