"""`trilemma train`: argument handling and the closing line; the work is `trilemma.training.train`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from trilemma.cli.arguments import add_table_options, parse_overrides, positive_float, positive_int
from trilemma.families import family_names


def add_train_parser(commands: Any) -> None:
    p = commands.add_parser("train", help="train one family on a data set")
    p.add_argument("--family", required=True, choices=family_names())
    p.add_argument("--data", required=True, help="mnist, digits, ring8, grid25, stacked-mnist, a folder of images, "
                   "an .npy/.npz file or a .csv table; options as mnist:classes=1-9")
    add_table_options(p)
    p.add_argument("--out", required=True, help="run folder (created; must be new or empty unless --resume)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=positive_float,
                        help="training budget: on a CPU the steps that many minutes of one idle core run, "
                        "calibrated once per machine; on a GPU wall minutes (default: 3 on images, 0.75 on "
                        "points)")
    budget.add_argument("--steps", type=positive_int, help="number of optimisation steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                   help="autocast precision; auto = bf16 on CUDA, fp32 on the CPU")
    p.add_argument("--conditional", action="store_true", help="class-conditional model (labelled data)")
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--lr", type=positive_float)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="change a family setting, e.g. --set loss=non-saturating --set beta=0.5")
    p.add_argument("--checkpoint-every", type=positive_int, metavar="STEPS",
                   help="checkpoint every this many steps (default: every 60 s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=positive_int,
                   help="CPU intra-op threads (default 1: a busy machine slows one thread the least, and a "
                   "time budget's steps are calibrated on one)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the trained networks (worth it on CUDA for long runs; off by default)")
    p.set_defaults(run=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from trilemma import distributed
    from trilemma.data import load_data
    from trilemma.images import save_sample_picture
    from trilemma.sampling import generate, load_run
    from trilemma.training import Budget, train

    dataset = load_data(args.data)
    budget = None
    if args.steps or args.minutes:
        budget = Budget(steps=args.steps, seconds=args.minutes * 60 if args.minutes else None)
    overrides = parse_overrides(args.set or [])
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.lr:
        overrides["lr"] = args.lr
    result = train(
        args.family, dataset, args.out, budget=budget, seed=args.seed, device=args.device,
        resume=args.resume, conditional=args.conditional, precision=args.precision, overrides=overrides,
        checkpoint_every_steps=args.checkpoint_every, progress=not args.quiet, compile=args.compile,
        threads=args.threads,
    )
    run = load_run(args.out, args.device)
    preview = generate(run.family, run.normalizer, {"image": 64, "table": 1000}.get(dataset.kind, 2500), seed=args.seed)
    picture = Path(args.out) / ("samples.csv" if dataset.kind == "table" else "samples.png")
    if not distributed.is_main():  # under torchrun: rank 0 writes and reports
        return 130 if result.interrupted else 0
    if dataset.kind == "table":
        from trilemma.tables.writing import write_csv

        write_csv(dataset.decode(preview.x), dataset.columns, picture)
    else:
        save_sample_picture(preview.x, picture, dataset.name)
    state = "stopped early (resume with --resume)" if result.interrupted else "done"
    unit = {"image": "images", "table": "rows"}.get(dataset.kind, "points")
    print(
        f"{args.family} on {dataset.name}: {state} after {result.steps} steps in {result.seconds:.1f} "
        f"{'CPU-' if result.clock == 'cpu' else ''}s ({result.images_per_second:.0f} {unit}/s; "
        f"{result.wall_seconds:.1f} s on the wall clock); checkpoint in {args.out}; samples in {picture}"
    )
    return 130 if result.interrupted else 0  # the shell's code for a run stopped by Ctrl-C
