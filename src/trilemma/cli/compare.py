"""`trilemma compare`: argument handling only; the work is `trilemma.compare.run_comparison`."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from trilemma.cli.arguments import (
    FEATURES_HELP,
    add_table_options,
    features_choice,
    positive_float,
    positive_int,
)
from trilemma.errors import UnsupportedRequest


def add_compare_parser(commands: Any) -> None:
    p = commands.add_parser(
        "compare", help="train every family on the same data under the same budget, evaluate them "
        "the same way and write report.html, results.json and results.csv")
    p.add_argument("--data", default="mnist", help="data spec, as for train (default: mnist)")
    add_table_options(p)
    p.add_argument("--out", required=True, help="output folder (new; rerun with the same one to resume)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=positive_float,
                        help="training budget per family and seed: on a CPU the steps that many minutes "
                        "of one idle core run, calibrated once per machine (default 4; the families train "
                        "side by side), on a GPU wall minutes (default 5); 0.75 on 2-D points")
    budget.add_argument("--steps", type=positive_int, help="training steps per family and seed instead")
    p.add_argument("--families", help="comma list, or all (default: the classic three, "
                   "vae,gan,diffusion)")
    p.add_argument("--hybrids", action="store_true",
                   help="add the hybrids (flow matching, the denoising-diffusion GAN, latent diffusion) "
                   "to the families compared")
    p.add_argument("--seeds", type=positive_int, default=1,
                   help="train each family this many times; the spread is the stability figure")
    p.add_argument("--priorities", help="weights of fidelity, diversity, speed, stability, e.g. "
                   "fidelity=1,speed=2 (default: fidelity=1,diversity=1,speed=0.5,stability=0.5)")
    p.add_argument("--samples", type=positive_int, help="samples per family for the final evaluation "
                   "(default: 1,000 on a CPU, 5,000 on a GPU, 2,500 for points)")
    p.add_argument("--evaluations", type=positive_int,
                   help="quality points during training, the last at the end (default 4)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    p.add_argument("--conditional", action="store_true",
                   help="class-conditional models (labelled data): adds class agreement and CAS")
    p.add_argument("--capabilities", action="store_true",
                   help="also measure what each family can do beyond sampling (section of the report)")
    p.add_argument("--parallel-families", action="store_true",
                   help="under torchrun: train the families at the same time, each on its own group "
                   "of ranks (equal groups of N // jobs ranks), rather than one after another on all")
    p.add_argument("--features", default="auto", metavar="auto|trained|random|dinov2|inception|PATH", help=FEATURES_HELP)
    p.add_argument("--quiet", action="store_true", help="print only the final line")
    p.set_defaults(run=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from trilemma.compare import (
        ComparisonInterrupted,
        parse_families,
        parse_priorities,
        preset,
        run_comparison,
    )
    from trilemma.data import load_data
    from trilemma.device import resolve_device
    from trilemma.families import hybrid_families

    priorities = parse_priorities(args.priorities) if args.priorities else None
    dataset = load_data(args.data)  # a bad spec fails here, before anything is created
    settings = preset(dataset.kind, resolve_device(args.device).type)
    families = parse_families(args.families, dataset.kind) if args.families else settings.families
    if args.hybrids:
        families = parse_families(",".join(dict.fromkeys(families + hybrid_families(dataset.model_kind))))
    changes: dict[str, Any] = {"data": args.data, "families": families,
                               "seeds": args.seeds, "device": args.device, "precision": args.precision,
                               "conditional": args.conditional, "capabilities": args.capabilities,
                               "features": features_choice(args.features, dataset.kind)}
    if args.minutes:
        changes.update(seconds=args.minutes * 60, steps=None)
    if args.steps:
        changes.update(steps=args.steps, seconds=None)
    if priorities:
        changes["priorities"] = priorities
    if args.samples:
        if args.samples < 20:
            raise UnsupportedRequest(f"--samples {args.samples}: at least 20 are needed for the metrics")
        changes.update(n_samples=args.samples, n_curve=min(settings.n_curve, args.samples),
                       n_nfe=min(settings.n_nfe, args.samples),
                       n_likelihood=min(settings.n_likelihood, args.samples))
    if args.evaluations:
        changes["evaluations"] = args.evaluations
    settings = replace(settings, **changes)
    try:
        results = run_comparison(settings, args.out, progress=not args.quiet, dataset=dataset,
                                 parallel_families=args.parallel_families)
    except ComparisonInterrupted as stop:
        print(f"trilemma: interrupted: {stop}")
        return 130
    from trilemma import distributed

    if not distributed.is_main():  # under torchrun: rank 0 reports
        return 0
    rec = results["recommendation"]
    from trilemma.compare.results import headline

    summary = "; ".join(f"{n} {headline(f)}, {f['samples_per_s']:.0f}/s" for n, f in results["families"].items())
    print(f"report: {args.out}/report.html; {summary}; recommended: {rec['family']}")
    return 0
