"""docs/zoo.md and each preset's README.md, generated from the cards (`make zoo-docs`).

Generated rather than hand-written so the table can never disagree with the
cards; tests/presets/test_cards.py fails when a committed file is stale.
"""

import os

ZOO_HEADER = """# Zoo

Pretrained encoders by name: `keras_ssl.load("<name>")` returns the encoder as
a Keras model (see docs/export.md for bundles, paths and URLs). Generated from
`zoo/*/preset.json` by `make zoo-docs`; do not edit by hand.

`size` says whether the bundle ships inside the package (works offline),
is downloadable, or is not published yet: then `load` raises an error that
gives the `keras-ssl pretrain` command of its recipe.
"""


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
    lines = [
        ZOO_HEADER,
        "| name | method | backbone | data | metrics | size |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for card in sorted(cards, key=lambda c: c.name):
        name = f"`{card.name}`" + "".join(f"<br>alias `{alias}`" for alias in card.aliases)
        data = card.recipe.get("dataset", card.recipe.get("data", ""))
        lines.append(
            f"| {name} | {card.method} | {_backbone(card)} | {data} | {_metrics(card)} | {_availability(card)} |"
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

    from keras_ssl.presets import get_preset, list_presets

    for path in write_zoo_docs([get_preset(name) for name in list_presets()], sys.argv[1]):
        print(path)
