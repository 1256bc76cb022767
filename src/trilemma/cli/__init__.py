"""Command-line interface: argument parsing only; every command calls the Python API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from trilemma.cli.arguments import positive_float, positive_int
from trilemma.errors import TrilemmaError, UnsupportedRequest


def _parse_overrides(pairs: list[str]) -> dict:
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UnsupportedRequest(f"--set {pair}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


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
    overrides = _parse_overrides(args.set or [])
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.lr:
        overrides["lr"] = args.lr
    result = train(
        args.family, dataset, args.out, budget=budget, seed=args.seed, device=args.device,
        resume=args.resume, conditional=args.conditional, precision=args.precision, overrides=overrides,
        checkpoint_every_steps=args.checkpoint_every, progress=not args.quiet, compile=args.compile,
    )
    run = load_run(args.out, args.device)
    preview = generate(run.family, run.normalizer, 64 if dataset.kind == "image" else 2500, seed=args.seed)
    picture = Path(args.out) / "samples.png"
    if not distributed.is_main():  # under torchrun: rank 0 writes and reports
        return 130 if result.interrupted else 0
    save_sample_picture(preview.x, picture, dataset.name)
    state = "stopped early (resume with --resume)" if result.interrupted else "done"
    print(
        f"{args.family} on {dataset.name}: {state} after {result.steps} steps in {result.seconds:.1f} s "
        f"({result.images_per_second:.0f} images/s); checkpoint in {args.out}; samples in {picture}"
    )
    return 130 if result.interrupted else 0  # the shell's code for a run stopped by Ctrl-C


def cmd_sample(args: argparse.Namespace) -> None:
    import numpy as np

    from trilemma import distributed
    from trilemma.images import save_sample_picture
    from trilemma.sampling import generate, load_run

    out = Path(args.out)
    if out.suffix != ".npz":
        raise UnsupportedRequest(f"--out {out}: the sample file must end in .npz")
    if not out.parent.exists():
        raise UnsupportedRequest(f"--out {out}: folder {out.parent} does not exist")
    run = load_run(args.run_dir, args.device)
    options = {}
    if args.sampler is not None:
        options["sampler"] = args.sampler
    if args.sampler_steps is not None:
        options["steps"] = args.sampler_steps
    for name in ("guidance", "truncation", "temperature"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    labels = None
    if args.class_label is not None:
        labels = np.full(args.n, args.class_label, dtype=np.int64)
    samples = generate(run.family, run.normalizer, args.n, seed=args.seed, batch_size=args.batch_size,
                       labels=labels, **options)
    if not distributed.is_main():  # under torchrun every rank samples its share; rank 0 writes
        return
    arrays = {"x": samples.x}
    if samples.y is not None:
        arrays["y"] = samples.y
    config = run.family.config
    sampler = options.get("sampler") or getattr(config, "sampler", None) or f"{run.config['family']} (one pass)"
    steps = options.get("steps") or (getattr(config, "num_train_timesteps", None) if sampler == "ddpm"
                                     else getattr(config, "sampler_steps", None))
    # How the samples were made travels with them (a JSON string, not a pickle), for `evaluate`.
    arrays["provenance"] = np.array(json.dumps({
        "run": str(run.run_dir), "family": run.config["family"], "step": run.step,
        "data": run.config["data"].get("spec"), "sampler": sampler, "sampler_steps": steps,
        "nfe": samples.nfe, "seed": args.seed, "samples_per_s": samples.samples_per_second,
        **{k: v for k, v in options.items() if k not in ("sampler", "steps")},
    }))
    tmp = out.with_name(f".{out.stem}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    if args.grid:
        save_sample_picture(samples.x, args.grid, run.config["data"]["name"])
    print(
        f"{args.n} samples from {run.config['family']} ({run.run_dir}, step {run.step}) -> {out}: "
        f"{samples.nfe} network evaluations per sample, {samples.samples_per_second:.1f} samples/s"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trilemma", description="Train GANs, VAEs and diffusion models on your data and compare them."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("train", help="train one family on a data set")
    p.add_argument("--family", required=True, choices=["vae", "gan", "diffusion"])
    p.add_argument("--data", required=True, help="mnist, digits, ring8, grid25, a folder of images or an .npy/.npz file; "
                   "options as mnist:classes=1-9")
    p.add_argument("--out", required=True, help="run folder (created; must be new or empty unless --resume)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=positive_float, help="training time budget (default: 3 min on images, 45 s on points)")
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
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the trained networks (worth it on CUDA for long runs; off by default)")
    p.set_defaults(run=cmd_train)

    p = commands.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run_dir")
    # --samples: under torchrun, whose parser reads --n as an abbreviation of its own --nnodes etc.
    p.add_argument("--n", "--samples", dest="n", type=positive_int, required=True)
    p.add_argument("--out", required=True, help="FILE.npz: x (uint8 NHWC images or float32 points), y if conditional")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", choices=["ddpm", "ddim", "dpm-solver++"], help="diffusion only")
    p.add_argument("--sampler-steps", type=positive_int, help="diffusion only")
    p.add_argument("--guidance", type=float, help="classifier-free guidance weight (conditional diffusion)")
    p.add_argument("--truncation", type=float, help="truncation ψ in [0, 1] (GAN)")
    p.add_argument("--temperature", type=float, help="prior temperature (VAE)")
    p.add_argument("--class", dest="class_label", type=int, help="class to generate (conditional models)")
    p.add_argument("--grid", help="also write a PNG picture of the samples")
    p.add_argument("--batch-size", type=positive_int, default=500)
    p.add_argument("--device", default="auto")
    p.set_defaults(run=cmd_sample)
    from trilemma.cli.evaluate import add_evaluate_parser
    add_evaluate_parser(commands)
    from trilemma.cli.compare import add_compare_parser
    add_compare_parser(commands)
    from trilemma.cli.editing import add_editing_parsers
    add_editing_parsers(commands)
    from trilemma.cli.scoring import add_scoring_parsers
    add_scoring_parsers(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from trilemma import distributed

    try:
        if distributed.launched():  # under torchrun: join the process group before any work
            from trilemma.device import resolve_device

            distributed.init(resolve_device(getattr(args, "device", "auto")))
        code = args.run(args)
        distributed.barrier()  # all ranks done before any tears the group down (no-op alone)
    except TrilemmaError as error:
        print(f"trilemma: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("trilemma: interrupted", file=sys.stderr)
        return 130
    finally:
        distributed.shutdown()  # under torchrun: leave the process group cleanly
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
