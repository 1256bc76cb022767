"""`trilemma sample`: argument handling and the sample file; the work is `trilemma.sampling.generate`."""

from __future__ import annotations

import argparse
from typing import Any

from trilemma.cli.arguments import output_file, positive_int
from trilemma.families import registered


def add_sample_parser(commands: Any) -> None:
    p = commands.add_parser("sample", help="draw samples from a trained run")
    p.add_argument("run_dir")
    # --samples: under torchrun, whose parser reads --n as an abbreviation of its own --nnodes etc.
    p.add_argument("--n", "--samples", dest="n", type=positive_int, required=True)
    p.add_argument("--out", required=True, help="FILE.npz: x (uint8 NHWC images or float32 points), y if "
                   "conditional; FILE.csv for a run on a table")
    p.add_argument("--seed", type=int, default=0)
    samplers = {s: name for name, cls in registered().items() for s in cls.samplers}
    p.add_argument("--sampler", choices=sorted(samplers), help="for a family with a choice of samplers: "
                   + ", ".join(f"{s} ({name})" for s, name in sorted(samplers.items())))
    p.add_argument("--sampler-steps", type=positive_int, help="steps of an iterative sampler")
    p.add_argument("--guidance", type=float, help="classifier-free guidance weight (conditional diffusion)")
    p.add_argument("--truncation", type=float, help="truncation ψ in [0, 1] (GAN)")
    p.add_argument("--temperature", type=float, help="prior temperature (VAE)")
    p.add_argument("--class", dest="class_label", type=int, help="class to generate (conditional models)")
    p.add_argument("--grid", help="also write a PNG picture of the samples")
    p.add_argument("--batch-size", type=positive_int, default=500)
    p.add_argument("--device", default="auto")
    p.set_defaults(run=cmd_sample)


def _sampling_options(args: argparse.Namespace) -> dict[str, Any]:
    options = {}
    if args.sampler is not None:
        options["sampler"] = args.sampler
    if args.sampler_steps is not None:
        options["steps"] = args.sampler_steps
    for name in ("guidance", "truncation", "temperature"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    return options


def _provenance(run: Any, samples: Any, options: dict[str, Any], seed: int) -> dict[str, Any]:
    """How the samples were made; it travels with them, for `evaluate`."""
    return {
        "run": str(run.run_dir), "family": run.config["family"], "step": run.step,
        "data": run.config["data"].get("spec"),
        **run.family.sampling_provenance(**{k: v for k, v in options.items() if k in ("sampler", "steps")}),
        "nfe": samples.nfe, "seed": seed, "samples_per_s": samples.samples_per_second,
        **{k: v for k, v in options.items() if k not in ("sampler", "steps")},
    }


def cmd_sample(args: argparse.Namespace) -> None:
    import numpy as np

    from trilemma import distributed
    from trilemma.images import save_sample_picture
    from trilemma.io import write_npz
    from trilemma.sampling import generate, load_run

    run = load_run(args.run_dir, args.device)
    table = run.config["data"].get("kind") == "table"
    out = output_file(args.out, "--out", ".csv" if table else ".npz")
    dataset = None
    if table:
        from trilemma.tables.writing import table_of_run

        dataset = table_of_run(run)  # before sampling: a changed file is refused at once
    options = _sampling_options(args)
    labels = None
    if args.class_label is not None:
        labels = np.full(args.n, args.class_label, dtype=np.int64)
    samples = generate(run.family, run.normalizer, args.n, seed=args.seed, batch_size=args.batch_size,
                       labels=labels, **options)
    if not distributed.is_main():  # under torchrun every rank samples its share; rank 0 writes
        return
    if dataset is not None:
        from trilemma.tables.writing import write_csv

        write_csv(dataset.decode(samples.x), dataset.columns, out)
    else:
        arrays = {"x": samples.x}
        if samples.y is not None:
            arrays["y"] = samples.y
        write_npz(out, arrays, _provenance(run, samples, options, args.seed))
    if args.grid and dataset is None:
        save_sample_picture(samples.x, args.grid, run.config["data"]["name"])
    print(
        f"{args.n} samples from {run.config['family']} ({run.run_dir}, step {run.step}) -> {out}: "
        f"{samples.nfe} network evaluations per sample, {samples.samples_per_second:.1f} samples/s"
    )
