"""The `keras-ssl` command line."""

import argparse
import os
import sys


def _quickstart(args):
    from keras_ssl import quickstart

    results = quickstart.run(output=args.output, epochs=args.epochs, seeds=tuple(args.seeds), fine_tune_epochs=args.fine_tune_epochs)
    return 0 if results["fine_tune"]["reloaded_bundle_matches"] else 1


def _list(args):
    from keras_ssl import methods

    for name in methods.list_methods():
        print(name)
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="keras-ssl", description="Self-supervised learning for Keras 3.")
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

    listing = commands.add_parser("list", help="list the available methods")
    listing.set_defaults(run=_list)
    return parser


def main(argv=None):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
