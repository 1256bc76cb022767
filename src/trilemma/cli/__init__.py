"""Command-line interface: argument parsing only; every command calls the Python API.

One module per group of commands: `train`, `sample`, `evaluate`, `compare`, `editing`
(interpolate, inpaint, img2img, denoise, upscale) and `scoring` (anomaly, truncation,
conditional, augment); `arguments` holds what they share.
"""

from __future__ import annotations

import argparse
import sys

from trilemma.errors import TrilemmaError, printable


def build_parser() -> argparse.ArgumentParser:
    from trilemma.cli.compare import add_compare_parser
    from trilemma.cli.editing import add_editing_parsers
    from trilemma.cli.evaluate import add_evaluate_parser
    from trilemma.cli.sample import add_sample_parser
    from trilemma.cli.scoring import add_scoring_parsers
    from trilemma.cli.table_tasks import add_table_parsers
    from trilemma.cli.train import add_train_parser

    parser = argparse.ArgumentParser(
        prog="trilemma", description="Train GANs, VAEs and diffusion models on your data and compare them."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (add_train_parser, add_sample_parser, add_evaluate_parser, add_compare_parser,
                add_editing_parsers, add_scoring_parsers, add_table_parsers):
        add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from trilemma import distributed
    from trilemma.cli.arguments import check_outputs_apart, fold_table_options

    try:
        if distributed.launched():  # under torchrun: join the process group before any work
            from trilemma.device import resolve_device

            distributed.init(resolve_device(getattr(args, "device", "auto")))
        fold_table_options(args)  # --data t.csv --target y: the spec t.csv:target=y
        check_outputs_apart(args)  # nothing a command writes may land on or among its inputs
        code = args.run(args)
        distributed.barrier()  # all ranks done before any tears the group down (no-op alone)
    except TrilemmaError as error:
        print(f"trilemma: error: {printable(error)}", file=sys.stderr)  # one line, whatever a name holds
        return 2
    except KeyboardInterrupt:
        print("trilemma: interrupted", file=sys.stderr)
        return 130
    finally:
        distributed.shutdown()  # under torchrun: leave the process group cleanly
    return code or 0
