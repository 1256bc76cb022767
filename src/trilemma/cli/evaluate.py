"""`trilemma evaluate FILE.npz|RUN_DIR`: measure samples against real data and print the table.

Argument handling and printing only; the numbers come from `trilemma.evaluation.evaluate`.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from trilemma.cli.arguments import FEATURES_HELP, features_choice, output_file, positive_int
from trilemma.errors import DataError, UnsupportedRequest
from trilemma.metrics.catalogue import BY_KEY, Metric


def add_evaluate_parser(commands: Any) -> None:
    """Register `evaluate` on the CLI's sub-command parsers."""
    p = commands.add_parser("evaluate", help="measure samples (an .npz file or a trained run) "
                            "against real data")
    p.add_argument("source", metavar="FILE.npz|RUN_DIR",
                   help="samples written by `trilemma sample` (x, and y if conditional), or a "
                   "run folder to sample from")
    p.add_argument("--data", help="the real data (a data spec, as for train); default for a run: "
                   "the data it was trained on")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="also write the results here")
    p.add_argument("--n", "--samples", dest="n", type=positive_int,  # torchrun takes --n for its --nnodes
                   help="samples to draw from a run (default 2000 images, 2500 points), or the "
                   "first N of a file")
    p.add_argument("--n-real", type=positive_int,
                   help="real reference samples (default: the whole reference split)")
    p.add_argument("--seed", type=int, default=0, help="sampling and evaluation seed")
    p.add_argument("--features", default="auto", metavar="auto|trained|random|dinov2|inception|PATH", help=FEATURES_HELP)
    p.add_argument("--inception-weights", metavar="PATH",
                   help="pytorch-fid's Inception weights file: FID comparable with published ones "
                   "(the same as --features PATH)")
    p.add_argument("--ladders", action="store_true",
                   help="images: also the sanity ladders, what the features can see on this data's held-out "
                   "images (blur, noise, classes dropped, near-copies); figures that fail one are marked")
    p.add_argument("--reference", choices=["heldout", "train"], default="heldout",
                   help="real split to compare with (default heldout)")
    p.add_argument("--nfe-curve", action="store_true",
                   help="diffusion runs: FD against network evaluations for each sampler")
    p.add_argument("--nfe-curve-n", type=positive_int, default=500,
                   help="samples per point of the NFE curve (default 500)")
    p.add_argument("--iwae-k", type=int, default=0, metavar="K",
                   help="VAE runs: importance-weighted log-likelihood of the held-out data with "
                   "K samples (default 0: off)")
    p.add_argument("--vlb-steps", type=int, default=0, metavar="K",
                   help="diffusion runs: variational bound on the held-out data's negative log-likelihood, "
                   "in bits per dimension, from K network evaluations per sample (e.g. 100; default 0: off)")
    p.add_argument("--batch-size", type=positive_int, default=500)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    p.set_defaults(run=cmd_evaluate)


def _run_provenance(run: Any, samples: Any) -> dict[str, Any]:
    from trilemma import distributed
    from trilemma.device import describe_device
    from trilemma.metrics.speed import training_cost

    family = run.family
    cost = training_cost(run.run_dir, count_flops=False)
    return {
        "source": str(run.run_dir),
        **family.sampling_provenance(),
        "nfe": samples.nfe,
        "seed": samples.info.get("seed"),
        "sampling_seconds": samples.seconds,
        "samples_per_s": samples.samples_per_second,
        "sampling_device": describe_device(family.device),
        "sampling_processes": distributed.world_size(),  # torchrun ranks the batches were dealt to
        "run": {
            "family": run.config["family"],
            "data": run.config["data"].get("spec"),
            "step": run.step,
            "train_seconds": cost["train_seconds"],
            "images_per_s": cost["images_per_s"],
            "parameters": cost["parameters"],
            "budget": cost["budget"],
            "device": cost["device"],
            "conditional": bool(run.config["family_config"]["data"].get("num_classes")),
        },
    }


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (bool, int)):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


def format_result(result: dict[str, Any]) -> str:
    """The table `trilemma evaluate` prints: metric and value, provenance and notes below."""
    metrics = result["metrics"]
    untrusted = _untrusted_keys(result.get("ladders"))
    rows = [(label + (" (untrustworthy here)" if key in untrusted else ""), text) for key, value in metrics.items()
            if (row := _metric_row(key, value, metrics)) is not None for label, text in [row]]
    bound = result.get("diffusion_bound")
    if bound:
        where = f"{bound['n']} {bound['split']}, {bound['steps']} levels"
        rows.append((f"NLL, diffusion bound ({where})", f"{_format(bound['nll_nats'])} nats"))
        rows.append(("NLL bound in bits per dimension", _format(bound["bits_per_dim"])))
    likelihood = result.get("likelihood")
    if likelihood:
        where = f"{likelihood['n']} {likelihood['split']}, k={likelihood['k']}"
        rows.append((f"NLL, IWAE bound ({where})", f"{_format(likelihood['nll_nats'])} nats"))
        rows.append(("NLL in bits per dimension", _format(likelihood["bits_per_dim"])))
        rows.append(("-ELBO", f"{_format(likelihood['negative_elbo_nats'])} nats"))
    width = max(len(label) for label, _ in rows)
    lines = [f"  {label:<{width}}  {text}" for label, text in rows]
    p = result["provenance"]
    sampler = p.get("sampler") or "unknown sampler"
    if p.get("sampler_steps"):
        sampler += f" {p['sampler_steps']} steps"
    sha = (p.get("extractor_sha256") or "")[:12]
    lines.append(
        f"provenance: {p['extractor']}{f' (sha256 {sha}…)' if sha else ''}; "
        f"{p['n_generated']} generated vs {p['n_real']} real ({p['reference']} split of "
        f"{p['data']}); {sampler}, NFE {_format(p.get('nfe'))}; sampling seed "
        f"{_format(p.get('seed'))}, evaluation seed {p['evaluation_seed']}"
    )
    lines += [f"note: {note}" for note in result.get("notes", [])]
    if result.get("nfe_curve"):
        lines.append("")
        lines.append(format_nfe_curve(result["nfe_curve"]))
    if result.get("ladders"):
        lines.append("")
        lines.append(format_ladders(result["ladders"]))
    return "\n".join(lines)


def _untrusted_keys(ladders: dict[str, Any] | None) -> set[str]:
    """The metric keys of the results columns the sanity ladders found untrustworthy."""
    columns = set((ladders or {}).get("untrustworthy") or [])
    metrics = [m for m in BY_KEY.values() if m.results_column in columns]
    # A column may be read from another key of evaluate()'s metrics (near-copies: in features).
    return {m.key for m in metrics} | {path.removeprefix("metrics.") for m in metrics for path in m.source or ()}


def format_ladders(ladders: dict[str, Any]) -> str:
    """The sanity ladders as lines: each ladder's rungs, and each figure's values with its verdict."""
    if ladders.get("skipped"):
        return f"sanity ladders: none, {ladders['skipped']}"
    lines = [(f"sanity ladders ({ladders['extractor']}, {ladders['n']} held-out images against as many "
             "training images): does each figure move the way it should?")]
    for ladder in ladders["ladders"]:
        lines.append(f"  {ladder['what']}: {' → '.join(ladder['rungs'])}")
        for key, values in ladder["figures"].items():
            verdict = "ok" if ladder["passed"][key] else "FAILS: untrustworthy on this data"
            arrow = "rise" if ladder["expected"][key] == "up" else "fall"
            lines.append(f"    {key:<20} {' → '.join(_format(v) for v in values)}  (should {arrow}: {verdict})")
    bad = ladders["untrustworthy"]
    lines.append(f"untrustworthy on this data: {', '.join(bad)}" if bad else "every figure passed its ladders")
    return "\n".join(lines)


def _metric_row(key: str, value: Any, metrics: dict[str, Any]) -> tuple[str, str] | None:
    """(label, value) of one figure as `trilemma.metrics.catalogue` declares it; None for one
    shown within another's row, and for the FD's copy under its own name (shown as ``fid``)."""
    if key == metrics.get("fid_name"):
        return None
    metric = BY_KEY.get(key)
    if metric is None:  # a test holds every figure of `evaluate` to a declaration
        return key, _format(value)
    if metric.within is not None:
        return None
    text = _figure(metric, value)
    if metric.spread is not None:
        text += f" ± {_figure(BY_KEY[metric.spread], metrics.get(metric.spread))}"
    if metric.out_of is not None:
        text += f" / {_figure(BY_KEY[metric.out_of], metrics.get(metric.out_of))}"
    return metric.label.format(fid_name=metrics.get("fid_name") or "FD"), text


def _figure(metric: Metric, value: Any) -> str:
    return "-" if value is None else metric.text(value)


def format_nfe_curve(rows: list[dict[str, Any]]) -> str:
    name = rows[0]["fid_name"]
    header = f"  {'sampler':<13} {'steps':>5} {'NFE':>5} {name:>16} {'KID':>10} {'samples/s':>10}"
    lines = [f"{name} against network evaluations (n = {rows[0]['n_generated']} per point)",
             header]
    for row in rows:
        lines.append(f"  {row['sampler']:<13} {row['steps']:>5} {row['nfe']:>5} "
                     f"{_figure(BY_KEY['fid'], row['fid']):>16} "
                     f"{_figure(BY_KEY['kid_mean'], row['kid_mean']):>10} "
                     f"{row['samples_per_s']:>10.1f}")
    return "\n".join(lines)


def _check_request(args: argparse.Namespace) -> tuple[Path, bool]:
    """The source and whether it is a run folder; options that cannot apply are refused first."""
    source = Path(args.source)
    output_file(args.json_out, "--json")
    for option, value in (("--iwae-k", args.iwae_k), ("--vlb-steps", args.vlb_steps)):
        if value < 0:
            raise UnsupportedRequest(f"{option} must be 0 (off) or positive, not {value}")
    if not source.exists():
        raise DataError(f"{source}: no such sample file or run folder")
    is_run = source.is_dir()
    if not is_run and source.suffix.lower() not in (".npz", ".npy"):
        raise DataError(f"{source}: give an .npz sample file (or .npy) or a run folder")
    if not is_run and (args.nfe_curve or args.iwae_k or args.vlb_steps):
        option = "--nfe-curve" if args.nfe_curve else "--iwae-k" if args.iwae_k else "--vlb-steps"
        raise UnsupportedRequest(f"{option} needs a run folder, not a sample file")
    if not is_run and args.data is None:
        raise DataError(f"{source}: give --data SPEC, the real data to compare the samples with")
    return source, is_run


def _check_run(run: Any, dataset: Any, source: Path, args: argparse.Namespace) -> None:
    from trilemma.families.capabilities import Likelihood
    from trilemma.io import describe_shape

    made = tuple(run.config["family_config"]["data"]["sample_shape"])
    if made != tuple(dataset.sample_shape):
        raise DataError(f"{source}: the model makes {describe_shape(made)} samples but "
                        f"{dataset.name} holds {describe_shape(dataset.sample_shape)}")
    if args.nfe_curve and not run.family.samplers:
        raise UnsupportedRequest(f"--nfe-curve: {source} is a {run.config['family']} run, which samples "
                                 "in one pass; the curve needs a family with a choice of samplers")
    if args.iwae_k and not isinstance(run.family, Likelihood):
        raise UnsupportedRequest(f"--iwae-k: {source} is a {run.config['family']} run; "
                                 "only a VAE has an encoder for the likelihood bound")
    if args.vlb_steps and run.config["family"] != "diffusion":
        raise UnsupportedRequest(f"--vlb-steps: {source} is a {run.config['family']} run; "
                                 "the bound is the diffusion family's (for a VAE: --iwae-k)")


def _samples_from_run(run: Any, dataset: Any, args: argparse.Namespace):
    from trilemma.evaluation import DEFAULT_N
    from trilemma.sampling import generate

    n = args.n or DEFAULT_N[dataset.kind]
    samples = generate(run.family, run.normalizer, n, seed=args.seed, batch_size=args.batch_size)
    return samples.x, samples.y, _run_provenance(run, samples)


def _samples_from_file(source: Path, n: int | None):
    from trilemma.io import read_array_file

    file = read_array_file(source)
    x, y = file.x, file.y
    if n is not None:
        if n > len(x):
            raise DataError(f"{source}: --n {n} but the file holds {len(x)} samples")
        x, y = x[:n], None if y is None else y[:n]
    # `trilemma sample` records how it made the file; other files are of unknown origin.
    return x, y, {"source": str(source), "sampler": None, "nfe": None, "seed": None, **file.provenance}


def cmd_evaluate(args: argparse.Namespace) -> None:
    from trilemma.data import load_data
    from trilemma.evaluation import check_samples, evaluate
    from trilemma.evaluation.features import extractor_for_dataset
    from trilemma.metrics.features import FeatureCache

    source, is_run = _check_request(args)
    run = None
    if is_run:
        from trilemma.sampling import load_run

        run = load_run(source, args.device)
    spec = args.data or run.config["data"].get("spec") or run.config["data"]["name"]
    dataset = load_data(spec)
    if args.inception_weights and dataset.kind != "image":
        raise UnsupportedRequest(f"--inception-weights: {dataset.name} holds points, not images")
    features = features_choice(args.inception_weights or args.features, dataset.kind)
    if run is not None:
        _check_run(run, dataset, source, args)
        x, y, provenance = _samples_from_run(run, dataset, args)
    else:
        x, y, provenance = _samples_from_file(source, args.n)
    check_samples(x, dataset, str(source))

    extractor = None
    if dataset.kind == "image":
        device = run.family.device if run is not None else args.device
        extractor = extractor_for_dataset(dataset, features, device=device)
    cache = FeatureCache()
    result = evaluate(x, dataset, samples_y=y, extractor=extractor, n_real=args.n_real,
                      reference=args.reference, seed=args.seed, provenance=provenance,
                      cache=cache, source=str(source))
    _add_run_figures(result, run, dataset, extractor, cache, args)
    if args.ladders and extractor is not None:
        from trilemma.evaluation.ladders import sanity_ladders

        result["ladders"] = sanity_ladders(dataset, extractor, cache, seed=args.seed)

    from trilemma import distributed

    if not distributed.is_main():  # under torchrun every rank took part; rank 0 reports
        return
    print(f"{len(x)} samples from {source} against {dataset.name}:")
    print(format_result(result))
    if args.json_out is not None:
        from trilemma.io import jsonable, write_json

        write_json(args.json_out, jsonable(result))
        print(f"results in {args.json_out}")


def _add_run_figures(result: dict[str, Any], run: Any, dataset: Any, extractor: Any, cache: Any,
                     args: argparse.Namespace) -> None:
    """What only a run can give: the NFE curve (diffusion) and the IWAE bound (VAE)."""
    from trilemma.evaluation import fid_against_nfe

    if args.nfe_curve:
        result["nfe_curve"] = fid_against_nfe(
            run.family, run.normalizer, dataset, n=args.nfe_curve_n, seed=args.seed,
            extractor=extractor, reference=args.reference, n_real=args.n_real,
            batch_size=args.batch_size, cache=cache,
        )
    if args.vlb_steps:
        result["diffusion_bound"] = _heldout_bound(run, dataset, args)
    if args.iwae_k:
        result["likelihood"] = _heldout_likelihood(run, dataset, args)
    if (args.vlb_steps or args.iwae_k) and dataset.kind == "image":
        result["notes"].append(
            "Bits per dimension are of [0, 256) intensities: a VAE's (its decoder read as a probability "
            "of the 256 grey levels) and a diffusion model's bound on dequantised images compare with "
            "each other and with published bits/dim figures.")


def _heldout_bound(run: Any, dataset: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The diffusion variational bound of (up to 1,000) held-out samples."""
    from trilemma.evaluation.likelihood import heldout_likelihood

    if run.family.conditional:
        raise UnsupportedRequest("--vlb-steps: the bound is computed for unconditional diffusion runs only")
    return heldout_likelihood(run.family, run.normalizer, dataset, seed=args.seed, vlb_steps=args.vlb_steps)


def _heldout_likelihood(run: Any, dataset: Any, args: argparse.Namespace) -> dict[str, Any]:
    """IWAE NLL of (up to 1,000) held-out samples, the VAE's own measure of fit (images: a
    probability of their 256 grey levels, comparable with the diffusion bound)."""
    from trilemma.evaluation.likelihood import heldout_likelihood

    return heldout_likelihood(run.family, run.normalizer, dataset, seed=args.seed, iwae_k=args.iwae_k,
                              labels=run.family.conditional)
