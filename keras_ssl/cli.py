"""The `keras-ssl` command line.

Exit codes scripts can trust: 0 success, 1 failure (the reason on stderr, no
traceback), 2 bad usage or an unknown preset/method name, 130 interrupted.
"""

import argparse
import json
import os
import sys

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad arguments that argparse cannot see (an unknown name, a missing --data)."""


def _quickstart(args):
    from keras_ssl import quickstart

    results = quickstart.run(
        output=args.output, epochs=args.epochs, seeds=tuple(args.seeds), fine_tune_epochs=args.fine_tune_epochs
    )
    return EXIT_OK if results["fine_tune"]["reloaded_bundle_matches"] else EXIT_FAILURE


def _list(args):
    from keras_ssl import presets

    if not args.methods_only:
        print(f"{'preset':42} {'method':22} weights")
        for name in presets.list_presets():
            card = presets.get_preset(name)
            weights = "not published" if card.weights is None else f"{card.weights.size / 2**20:.1f} MiB"
            aliases = f" (alias: {', '.join(card.aliases)})" if card.aliases else ""
            print(f"{name:42} {card.method:22} {weights}{aliases}")
        print()
    print("methods: " + ", ".join(_method_names()))
    return EXIT_OK


def _method_names():
    from keras_ssl.methods import list_methods

    return list_methods()


def _resolve_pretrain_target(target):
    """(card or None, method name) for a preset name/alias or a method name."""
    from keras_ssl import methods, presets

    if target in methods.list_methods():
        return None, target
    try:
        card = presets.get_preset(target)
    except presets.UnknownPresetError as error:
        raise UsageError(f"{error} Methods: {', '.join(_method_names())}.") from None
    return card, card.method


def _image_backbone(card, args):
    from keras_ssl import backbones

    if card is not None:
        spec = card.backbone
        factory = getattr(backbones, spec["class_name"], None)
        if factory is None:
            raise UsageError(f"The card names an unknown backbone {spec['class_name']!r}.")
        config = dict(spec["config"])
        if "input_shape" in config:
            config["input_shape"] = tuple(config["input_shape"])
        return factory(**config)
    if args.backbone == "vit":
        return backbones.ViT("nano", image_size=32)
    return backbones.ResNet18(stem="cifar", width=args.width, input_shape=(32, 32, 3))


def _fit_options(args):
    """Keras progress bars on a terminal, one line per epoch otherwise; --max-steps caps each epoch."""
    return {
        "verbose": 1 if sys.stdout.isatty() else 2,
        **({"steps_per_epoch": args.max_steps} if args.max_steps else {}),
    }


def _seed(args, recipe):
    return args.seed if args.seed is not None else recipe.get("seed", 0)


def _load_images(path):
    """The training images of a CIFAR-style .npz, or a TFDS dataset name for Method.fit to read."""
    from keras_ssl import data

    if path.endswith(".npz"):
        return data.load_cifar10_npz(path)[0][0]
    if os.path.exists(path):
        raise UsageError(f"--data must be a CIFAR-style .npz or a TFDS dataset name. Received: {path}")
    return path


def _pretrain(args):
    import keras

    from keras_ssl import methods
    from keras_ssl.bundle import export

    card, method_name = _resolve_pretrain_target(args.target)
    recipe = card.recipe if card else {}
    data_path = args.data or recipe.get("data")
    if not data_path:
        raise UsageError("Pass --data: a CIFAR-style .npz file or a TFDS dataset name (a text file for text methods).")
    if card is not None and not args.data and not os.path.exists(data_path):
        raise UsageError(f"The recipe's data {data_path} is not here; pass --data with its path.")
    if method_name in methods.list_methods(data="text"):  # trained on a text file; the bundle carries the vocabulary
        return _pretrain_text(args, card, method_name, recipe, data_path)
    epochs = args.epochs or recipe.get("epochs", 1)
    batch_size = args.batch_size or recipe.get("batch_size", 256)
    learning_rate = args.learning_rate or recipe.get("learning_rate", 2e-3)
    keras.utils.set_random_seed(_seed(args, recipe))
    images = _load_images(data_path)
    encoder = _image_backbone(card, args)
    method = methods.get_method(method_name)(encoder, **recipe.get("method_config", {}))
    method.compile(learning_rate=learning_rate)
    method.fit(
        images, batch_size=batch_size if not isinstance(images, str) else None, epochs=epochs, **_fit_options(args)
    )
    metadata = {
        "preset": card.name if card else None,
        "method": method_name,
        "recipe": {
            **recipe,
            "data": data_path,
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            **({"steps_per_epoch": args.max_steps} if args.max_steps else {}),
        },
    }
    path = export(method, args.output, overwrite=args.overwrite, metadata=metadata)
    print(f"bundle: {path}")
    return EXIT_OK


def _pretrain_text(args, card, method_name, recipe, data_path):
    """MaskedLM (WordPiece tokenizer + Transformer) or Word2Vec on a text file; the bundle carries its vocabulary."""
    import tempfile

    import keras

    from keras_ssl import backbones, data, methods
    from keras_ssl.bundle import export

    config = dict(card.backbone["config"]) if card else {}
    seed = _seed(args, recipe)
    max_length = config.get("max_length", 128)
    metadata = {"preset": card.name if card else None, "method": method_name, "recipe": {**recipe, "data": data_path}}
    with tempfile.TemporaryDirectory() as scratch:
        if method_name == "word2vec":
            model = methods.Word2Vec(**{**config, "seed": seed}).fit(data_path)
            vocabulary = os.path.join(scratch, "vocabulary.txt")
            with open(vocabulary, "w", encoding="utf-8") as f:
                f.write("\n".join(model.vocabulary) + "\n")
            encoder, assets = model.as_embedding(), {"vocabulary.txt": vocabulary}
        else:
            keras.utils.set_random_seed(seed)
            text = data.load_wikitext(data_path)
            tokenizer = data.WordPieceTokenizer.train(text, vocabulary_size=config.pop("vocabulary_size", 8000))
            ids = tokenizer.pack(text, max_length)
            method = methods.MaskedLM(
                backbones.TransformerEncoder(tokenizer.vocabulary_size, **config), **recipe.get("method_config", {})
            )
            method.compile(learning_rate=args.learning_rate or recipe.get("learning_rate", 1e-3))
            method.fit(
                ids,
                batch_size=args.batch_size or recipe.get("batch_size", 64),
                epochs=args.epochs or recipe.get("epochs", 1),
                **_fit_options(args),
            )
            encoder, assets = method.encoder, {"tokenizer.json": tokenizer.save(scratch)}
        path = export(
            encoder,
            args.output,
            overwrite=args.overwrite,
            metadata=metadata,
            extra_assets=assets,
            input_shape=(max_length,) if method_name == "masked_lm" else None,
        )
    print(f"bundle: {path}")
    return EXIT_OK


def _evaluate(args):
    from keras_ssl import data, evaluation
    from keras_ssl.presets import load

    encoder = load(args.model, trainable=False)
    (x_train, y_train), (x_test, y_test) = data.load_cifar10_npz(args.data)
    x_train, y_train = x_train[: args.train_size], y_train[: args.train_size]
    results = {
        "model": args.model,
        "data": args.data,
        "knn": evaluation.knn_accuracy(encoder, x_train, y_train, x_test, y_test, k=args.k, temperature=0.1),
        "linear_probe": evaluation.linear_probe(
            encoder, x_train[: args.linear_size], y_train[: args.linear_size], x_test, y_test, max_iter=300
        ),
        "train_size": int(len(x_train)),
        "linear_size": int(min(args.linear_size, len(x_train))),
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return EXIT_OK


def _export(args):
    from keras_ssl.bundle import export
    from keras_ssl.presets import load
    from keras_ssl.presets.archive import make_archive

    model = load(args.model)
    input_shape = (
        tuple(None if d == "none" else int(d) for d in args.input_shape.split(",")) if args.input_shape else None
    )
    if args.output.endswith((".tar.gz", ".tgz")):
        import tempfile

        if os.path.exists(args.output) and not args.overwrite:
            raise FileExistsError(f"{args.output} already exists; pass --overwrite to replace it.")
        with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.output))) as staging:
            bundle = export(model, os.path.join(staging, "bundle"), input_shape=input_shape)
            sha256 = make_archive(bundle, args.output)
        print(
            json.dumps({"file": os.path.basename(args.output), "sha256": sha256, "size": os.path.getsize(args.output)})
        )
    else:
        print(f"bundle: {export(model, args.output, overwrite=args.overwrite, input_shape=input_shape)}")
    return EXIT_OK


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-ssl",
        description="Self-supervised learning for Keras 3.",
        epilog="Exit codes: 0 ok, 1 failure, 2 bad usage or unknown name, 130 interrupted.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    quick = commands.add_parser(
        "quickstart",
        help="pretrain SimCLR on the digits scikit-learn ships, evaluate, export, fine-tune, write a report",
        description="Runs the whole keras_ssl workflow on data that ships with the install (no download).",
    )
    quick.add_argument("--output", default="quickstart_report", help="folder for report.md, plots and the bundle")
    quick.add_argument("--epochs", type=int, default=80, help="pretraining epochs per seed (default: 80)")
    quick.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="seeds to pretrain (default: 0 1)")
    quick.add_argument("--fine-tune-epochs", type=int, default=30, help="fine-tuning epochs (default: 30)")
    quick.set_defaults(run=_quickstart)

    listing = commands.add_parser(
        "list",
        help="list the zoo's presets and the methods",
        description="Lists the presets (name, method, weights) and the registered methods.",
    )
    listing.add_argument("--methods-only", action="store_true", help="list only the method names")
    listing.set_defaults(run=_list)

    pretrain = commands.add_parser(
        "pretrain",
        help="pretrain an encoder by a preset's recipe or with a method's defaults",
        description="Pretrains by a preset's recipe (`keras-ssl pretrain simclr_resnet18_cifar10 --data cifar10.npz`) "
        "or a method with a CIFAR-sized ResNet-18 (`keras-ssl pretrain byol --data cifar10.npz`), "
        "then exports the encoder as a bundle that `keras_ssl.load` reads. Text methods (masked_lm, "
        "word2vec) train on a text file and put their tokenizer.json / vocabulary.txt into the bundle's "
        "assets/keras_ssl/.",
    )
    pretrain.add_argument("target", help="a preset name or alias, or a method name (keras-ssl list)")
    pretrain.add_argument(
        "--data",
        help="a CIFAR-style .npz (x_train uint8 NHWC) or a TFDS dataset name; a text "
        "file (one sentence or paragraph per line) for masked_lm and word2vec; "
        "default: the recipe's data",
    )
    pretrain.add_argument("--output", required=True, help="the bundle directory to write")
    pretrain.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --output")
    pretrain.add_argument("--epochs", type=int, default=None, help="default: the recipe's (1 for a method)")
    pretrain.add_argument("--batch-size", type=int, default=None, help="default: the recipe's (256 for a method)")
    pretrain.add_argument("--learning-rate", type=float, default=None, help="default: the recipe's (2e-3 for a method)")
    pretrain.add_argument("--max-steps", type=int, default=None, help="stop each epoch after this many steps")
    pretrain.add_argument("--seed", type=int, default=None)
    pretrain.add_argument("--backbone", choices=("resnet18", "vit"), default="resnet18", help="for a method name")
    pretrain.add_argument("--width", type=float, default=0.125, help="ResNet-18 width for a method name")
    pretrain.set_defaults(run=_pretrain)

    evaluate = commands.add_parser(
        "evaluate",
        help="kNN and linear-probe accuracy of an image encoder on CIFAR-10",
        description="Loads a preset, bundle or archive and prints test kNN (k=200, T=0.1) and linear-probe "
        "accuracy as JSON.",
    )
    evaluate.add_argument("model", help="a preset name, bundle directory, archive or URL")
    evaluate.add_argument("--data", required=True, help="a CIFAR-10 .npz (x_train, y_train, x_test, y_test)")
    evaluate.add_argument("--k", type=int, default=200)
    evaluate.add_argument("--train-size", type=int, default=50000, help="training images in the kNN bank")
    evaluate.add_argument("--linear-size", type=int, default=10000, help="training images for the linear probe")
    evaluate.add_argument("--json", help="also write the results to this file")
    evaluate.set_defaults(run=_evaluate)

    exporting = commands.add_parser(
        "export",
        help="write a preset or bundle as a servable bundle directory or a .tar.gz archive",
        description="Loads a model (preset, bundle, archive, URL) and writes it as a bundle directory, or as a "
        "deterministic .tar.gz archive (prints its sha256 and size for a zoo card).",
    )
    exporting.add_argument("model", help="a preset name, bundle directory, archive or URL")
    exporting.add_argument("output", help="a bundle directory, or a path ending in .tar.gz")
    exporting.add_argument(
        "--input-shape", help="fixed serving input shape, e.g. 32,32,3 or 128 (needed under JAX for open-size models)"
    )
    exporting.add_argument("--overwrite", action="store_true")
    exporting.set_defaults(run=_export)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except UsageError as error:
        print(f"keras-ssl {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"keras-ssl {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001 - one line on stderr and a non-zero code, not a traceback
        from keras_ssl import presets

        if isinstance(error, presets.UnknownPresetError):
            print(f"keras-ssl {args.command}: error: {error}", file=sys.stderr)
            return EXIT_USAGE
        if os.environ.get("KERAS_SSL_DEBUG"):
            raise
        print(f"keras-ssl {args.command}: error: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
