"""The `keras-ssl` command line.

Exit codes scripts can trust: 0 success, 1 failure (the reason on stderr, no
traceback), 2 bad usage (a value out of range, an unknown preset or method
name; nothing is written), 130 interrupted.

Only argparse and the standard library load before a command runs: `keras-ssl
--help`, `keras-ssl pretrain --help` and `keras-ssl list` import no framework.
Each command imports Keras and the backend itself (`pretrain.py`,
`evaluate.py`), inside `quiet.quiet()`, which keeps TensorFlow's start-up
banners off the terminal unless --verbose or KERAS_SSL_DEBUG is given.
"""

import argparse
import json
import os
import sys

from keras_ssl.cli import arguments, quiet

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad arguments that argparse cannot see (an unknown name, a missing --data); exit code 2."""


def _quickstart(args):
    from keras_ssl import quickstart

    results = quickstart.run(
        output=args.output, epochs=args.epochs, seeds=tuple(args.seeds), fine_tune_epochs=args.fine_tune_epochs
    )
    return EXIT_OK if results["fine_tune"]["reloaded_bundle_matches"] else EXIT_FAILURE


def _list(args):
    from keras_ssl import presets
    from keras_ssl.methods import list_methods

    if not args.methods_only:
        print(f"{'preset':42} {'method':22} weights")
        for name in presets.list_presets():
            card = presets.get_preset(name)
            aliases = f" (alias: {', '.join(card.aliases)})" if card.aliases else ""
            print(f"{name:42} {card.method:22} {card.weights.size / 2**20:.1f} MiB{aliases}")
        recipes = presets.list_recipes()
        if recipes:
            print(f"\n{len(recipes)} recipes without published weights: keras-ssl recipes")
        print()
    print("methods: " + ", ".join(list_methods()))
    return EXIT_OK


def _recipes(args):
    from keras_ssl import presets

    print(f"{'recipe':42} {'method':22} train it with")
    for name in presets.list_recipes():
        card = presets.get_preset(name)
        print(f"{name:42} {card.method:22} {card.pretrain_command}")
    return EXIT_OK


def _pretrain(args):
    from keras_ssl.cli import pretrain

    return pretrain.run(args, args.argv)


def _evaluate(args):
    from keras_ssl.cli import evaluate

    return evaluate.run(args)


def _export(args):
    from keras_ssl.bundle import export, format_signatures, read_metadata
    from keras_ssl.presets import load
    from keras_ssl.presets.archive import make_archive

    model = load(args.model)
    if args.output.endswith(".onnx"):
        path = export(model, args.output, overwrite=args.overwrite, input_shape=args.input_shape, format="onnx")
        print(f"onnx: {path}")
        return EXIT_OK
    if args.output.endswith((".tar.gz", ".tgz")):
        import tempfile

        if os.path.exists(args.output) and not args.overwrite:
            raise FileExistsError(f"{args.output} already exists; pass --overwrite to replace it.")
        with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(args.output))) as staging:
            bundle = export(model, os.path.join(staging, "bundle"), input_shape=args.input_shape)
            signatures = read_metadata(bundle).get("signatures", {})
            sha256 = make_archive(bundle, args.output)
        # stdout stays one JSON line (the card's `weights` fields); the signatures go to stderr.
        print(
            json.dumps({"file": os.path.basename(args.output), "sha256": sha256, "size": os.path.getsize(args.output)})
        )
        for line in format_signatures(signatures):
            print(f"signature {line}", file=sys.stderr)
    else:
        bundle = export(model, args.output, overwrite=args.overwrite, input_shape=args.input_shape)
        print(f"bundle: {bundle}")
        for line in format_signatures(read_metadata(bundle).get("signatures", {})):
            print(f"signature {line}")
    return EXIT_OK


def _add_pretrain(commands, common):
    pretrain = commands.add_parser(
        "pretrain",
        parents=[common],
        help="pretrain an encoder with a method, or by a preset's recipe, and export it as a bundle",
        description="Pretrains a method on your images (`keras-ssl pretrain simclr --data photos/ --image-size 64 "
        "--backbone resnet18 --output build/simclr`) or by a preset's recipe (`keras-ssl pretrain "
        "simclr_resnet18_cifar10 --data cifar10.npz --output build/simclr`), then exports the encoder as a bundle "
        "that `keras_ssl.load` reads. Every run leaves a run folder beside the bundle (<output>.run: command.txt, "
        "history.json, loss.png, tensorboard/, backups/); running the same command again resumes from its backup. "
        "Text methods (masked_lm, word2vec) train on text and put their tokenizer.json / vocabulary.txt into the "
        "bundle's assets/keras_ssl/.",
        epilog="docs/cli.md describes the run folder, resuming, --distribute and what --verbose shows.",
    )
    pretrain.add_argument("target", help="a method name or a preset name or alias (keras-ssl list)")
    pretrain.add_argument(
        "--data",
        metavar="PATH",
        help="images: a folder (any nesting, labels ignored), an .npz of images (x_train, images, or its one 4-D "
        "array), TFRecord files ('shards-*.tfrecord') or tfds:NAME; text methods: a text file, a folder or a glob "
        "of .txt files. Default: the preset's recipe data",
    )
    pretrain.add_argument("--output", required=True, metavar="DIR", help="the bundle directory to write")
    pretrain.add_argument("--overwrite", action="store_true", help="replace an existing bundle at --output")

    model = pretrain.add_argument_group("model")
    model.add_argument(
        "--backbone",
        type=arguments.backbone,
        metavar="NAME",
        help=f"the encoder for a method name: {', '.join(arguments.BACKBONES)} or keras.applications.NAME (e.g. "
        "keras.applications.MobileNetV3Small, with random weights unless --backbone-weights; fed the scaling of "
        "its preprocess_input). Default: resnet18; vit-nano for mae; a preset fixes its own",
    )
    model.add_argument(
        "--backbone-weights",
        metavar="PATH",
        help="start a keras.applications backbone from these weights: 'imagenet' (downloaded by Keras) or the path "
        "of a weights file of the same model built with include_top=False (domain-adaptive pretraining)",
    )
    model.add_argument(
        "--width",
        metavar="W",
        type=arguments.positive_float,
        help="channel multiplier of ResNets (default 0.125, the zoo's; 1.0 is the papers') and the convnet "
        "(default 1.0: filters 32, 64, 128)",
    )
    model.add_argument(
        "--stem", choices=arguments.STEMS, help="ResNet stem (default: cifar up to 64 px images, imagenet above)"
    )
    model.add_argument(
        "--image-size",
        type=arguments.positive_int,
        metavar="N",
        help="side of the square images the encoder takes; folders, TFRecords and other .npz sizes are resized "
        "to it (default: the preset's, the .npz's, else 32)",
    )

    training = pretrain.add_argument_group("training")
    training.add_argument(
        "--epochs", type=arguments.positive_int, metavar="N", help="default: the recipe's (1 for a method)"
    )
    training.add_argument(
        "--batch-size",
        type=arguments.positive_int,
        metavar="N",
        help="global batch, split over replicas (default: 256)",
    )
    training.add_argument(
        "--learning-rate",
        type=arguments.positive_float,
        metavar="LR",
        help="peak AdamW rate (default: the recipe's, or 2e-3)",
    )
    training.add_argument(
        "--max-steps",
        type=arguments.positive_int,
        metavar="N",
        help="train at most this many steps per epoch (a quick run)",
    )
    training.add_argument(
        "--seed",
        type=arguments.non_negative_int,
        metavar="N",
        help="seed everything and make TensorFlow's ops deterministic (keras_ssl.set_deterministic); "
        "default: the recipe's seed (0) for weights and data order only",
    )

    run = pretrain.add_argument_group("run folder and resuming")
    run.add_argument("--run-dir", metavar="DIR", help="the run folder (default: <output>.run, beside the bundle)")
    run.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="where the backup lives (default: <run-dir>/backups); the same command run again resumes from it",
    )
    run.add_argument(
        "--checkpoint-every",
        type=arguments.save_frequency,
        metavar="{N,epoch}",
        default="epoch",
        help="back up every N steps, or 'epoch' (the default); epoch ends are always backed up",
    )
    run.add_argument(
        "--restart", action="store_true", help="ignore and replace the backup of an earlier run instead of resuming"
    )

    scale = pretrain.add_argument_group("devices")
    scale.add_argument(
        "--distribute",
        choices=arguments.DISTRIBUTE,
        default="auto",
        help="auto (default): every local accelerator when there is more than one, else one device; mirrored / "
        "data-parallel: all local devices; multi-worker: one process per machine (TF_CONFIG, or JAX's "
        "KERAS_DISTRIBUTION_* variables)",
    )
    scale.add_argument(
        "--distribute-timeout",
        dest="timeout",
        type=arguments.positive_int,
        metavar="SECONDS",
        default=120,
        help="seconds a collective may wait for a worker before the run fails instead of hanging (default: 120)",
    )
    pretrain.set_defaults(run=_pretrain)


def _add_evaluate(commands, common):
    evaluate = commands.add_parser(
        "evaluate",
        parents=[common],
        help="kNN and linear-probe accuracy of an image encoder on labelled images",
        description="Loads a preset, bundle or archive and prints test kNN (k=200, T=0.1 by default) and "
        "linear-probe accuracy as JSON. Images are resized to the encoder's input size.",
    )
    evaluate.add_argument("model", help="a preset name, bundle directory, archive or URL")
    evaluate.add_argument(
        "--data",
        required=True,
        metavar="PATH",
        help="an .npz (x_train/y_train, images/labels or x/y, plus x_test/y_test unless --test-data or "
        "--test-fraction), or a labelled folder (one subfolder of images per class)",
    )
    evaluate.add_argument("--test-data", metavar="PATH", help="the test split: an .npz or a labelled folder")
    evaluate.add_argument(
        "--test-fraction",
        type=arguments.fraction,
        metavar="F",
        help="hold out this share of each class for testing when there is no test split (folders: 0.2)",
    )
    evaluate.add_argument(
        "--image-size",
        type=arguments.positive_int,
        metavar="N",
        help="read at this size when the encoder accepts any size",
    )
    evaluate.add_argument(
        "--k", type=arguments.positive_int, default=200, metavar="K", help="kNN neighbours (default: 200)"
    )
    evaluate.add_argument(
        "--temperature",
        type=arguments.positive_float,
        default=0.1,
        metavar="T",
        help="kNN vote temperature (default: 0.1)",
    )
    evaluate.add_argument(
        "--train-size", type=arguments.positive_int, default=50000, metavar="N", help="training images in the kNN bank"
    )
    evaluate.add_argument(
        "--linear-size",
        type=arguments.positive_int,
        default=10000,
        metavar="N",
        help="training images for the linear probe",
    )
    evaluate.add_argument("--json", metavar="FILE", help="also write the results to this file")
    evaluate.set_defaults(run=_evaluate)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-ssl",
        description="Self-supervised learning for Keras 3.",
        epilog="Exit codes: 0 ok, 1 failure, 2 bad usage or unknown name, 130 interrupted.",
    )
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs and retracing warnings")
    # Sub-commands take --verbose too; SUPPRESS keeps their default from overwriting `keras-ssl --verbose`.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    quick = commands.add_parser(
        "quickstart",
        parents=[common],
        help="pretrain SimCLR on the digits scikit-learn ships, evaluate, export, fine-tune, write a report",
        description="Runs the whole keras_ssl workflow on data that ships with the install (no download).",
    )
    quick.add_argument("--output", default="quickstart_report", help="folder for report.md, plots and the bundle")
    quick.add_argument(
        "--epochs", type=arguments.positive_int, default=80, help="pretraining epochs per seed (default: 80)"
    )
    quick.add_argument(
        "--seeds", type=arguments.non_negative_int, nargs="+", default=[0, 1], help="seeds to pretrain (default: 0 1)"
    )
    quick.add_argument(
        "--fine-tune-epochs", type=arguments.positive_int, default=30, help="fine-tuning epochs (default: 30)"
    )
    quick.set_defaults(run=_quickstart)

    listing = commands.add_parser(
        "list",
        parents=[common],
        help="list the zoo's presets and the methods",
        description="Lists the presets (name, method, weights) and the registered methods.",
    )
    listing.add_argument("--methods-only", action="store_true", help="list only the method names")
    listing.set_defaults(run=_list)

    recipes = commands.add_parser(
        "recipes",
        parents=[common],
        help="list the zoo's recipes: cards without published weights, and how to train them",
        description="Lists the recipes (cards whose weights are not published) and the command that trains each.",
    )
    recipes.set_defaults(run=_recipes)

    _add_pretrain(commands, common)
    _add_evaluate(commands, common)

    exporting = commands.add_parser(
        "export",
        parents=[common],
        help="write a preset or bundle as a servable bundle directory, a .tar.gz archive or an .onnx file",
        description="Loads a model (preset, bundle, archive, URL) and writes it as a bundle directory, as a "
        "deterministic .tar.gz archive (prints its sha256 and size for a zoo card), or as one ONNX file (an output "
        "ending in .onnx). Prints the SavedModel's signatures: their names, inputs and outputs with shapes and dtypes.",
    )
    exporting.add_argument("model", help="a preset name, bundle directory, archive or URL")
    exporting.add_argument("output", help="a bundle directory, or a path ending in .tar.gz or .onnx")
    exporting.add_argument(
        "--input-shape",
        type=arguments.shape,
        metavar="SHAPE",
        help="fixed serving input shape, e.g. 32,32,3 or 128 (needed under JAX for open-size models)",
    )
    exporting.add_argument("--overwrite", action="store_true")
    exporting.set_defaults(run=_export)
    return parser


def _error(command, text):
    print(f"keras-ssl {command}: error: {text}", file=sys.stderr)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    verbose = quiet.verbose_requested(getattr(args, "verbose", False))
    with quiet.quiet(verbose):
        try:
            return args.run(args)
        except UsageError as error:
            _error(args.command, error)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print(f"keras-ssl {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except Exception as error:  # noqa: BLE001 - one line on stderr and a non-zero code, not a traceback
            from keras_ssl import presets

            if isinstance(error, presets.UnknownPresetError):
                _error(args.command, error)
                return EXIT_USAGE
            if os.environ.get("KERAS_SSL_DEBUG", "") not in ("", "0"):
                raise
            hint = " Pass --restart to start over instead." if type(error).__name__ == "BackupMismatchError" else ""
            _error(args.command, f"{type(error).__name__}: {error}{hint}")
            return EXIT_FAILURE
