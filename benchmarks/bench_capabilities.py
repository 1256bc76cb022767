"""The scored capabilities of issue 6 on `mnist`, measured through the CLI, commands recorded.

    python benchmarks/bench_capabilities.py --work DIR                      # the full protocol (outputs in DIR are reused)
    python benchmarks/bench_capabilities.py --work DIR --steps 300 --loo-steps 200 \\
        --loo-classes 0,1 --parts conditional,truncation,anomaly,augment   # a quick check

Parts (each a list of `trilemma …` commands, all printed and recorded):
- conditional: `train --conditional` per family (diffusion --minutes 6, GAN and VAE --minutes
  3, or --steps N for all), then `conditional RUN` (agreement with the requested class at the
  default settings, and CAS). Targets: diffusion ≥ 0.95, GAN and VAE ≥ 0.90.
- truncation: `truncation RUN` on each conditional run, the family's knob (GAN ψ, VAE
  temperature, diffusion guidance). Target (GAN): precision higher and recall lower at
  ψ = 0.5 than at ψ = 1.0.
- anomaly: per family and held-out class c, `train --data mnist:classes=<all but c>` (budget
  --loo-minutes, default 3, or --loo-steps), then one `anomaly RUN --images F --out S.csv` on
  the 1,000 held-out digits (all ten classes) and 1,000 uniform-noise images; from its CSV, the
  AUROC of class c against the other digits (leave-one-out) and of noise against the digits,
  for the score and for each raw statistic. Targets: the best family's mean leave-one-out
  AUROC ≥ 0.80; noise AUROC ≥ 0.95 for every family.
- augment: `augment` with the three conditional runs: 100 real labelled images, with and
  without 1,000 generated ones. Target: some family's samples raise held-out accuracy.

The full protocol (30 leave-one-out trainings) takes about two hours; --loo-classes and
--families restrict it, and the figures record the budgets that produced them. Results are
appended to benchmarks/results/capabilities.jsonl.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import record

from trilemma.families import default_comparison

TARGET_AGREEMENT = {"diffusion": 0.95, "gan": 0.90, "vae": 0.90}
COMMANDS: list[str] = []


def trilemma(*args: object, reuse: Path | None = None) -> None:
    """Run one CLI command; with `reuse`, an existing output file stands for a finished run."""
    command = ["trilemma", *map(str, args)]
    COMMANDS.append(shlex.join(command))
    print("$", COMMANDS[-1], flush=True)
    if reuse is not None and reuse.exists():
        print(f"  (reusing {reuse})")
        return
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "trilemma", *command[1:]], check=False, text=True,
                          capture_output=True)
    print(done.stdout.rstrip(), f"\n  ({time.perf_counter() - started:.0f} s)", flush=True)
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def budget(args: argparse.Namespace, family: str, loo: bool = False) -> list[str]:
    steps = args.loo_steps if loo else args.steps
    if steps:
        per_family = dict(item.split("=") for item in steps.split(",")) if "=" in steps else {}
        return ["--steps", per_family.get(family, steps)]
    if loo:
        return ["--minutes", str(args.loo_minutes)]
    return ["--minutes", str(args.diffusion_minutes if family == "diffusion" else args.minutes)]


def train(args: argparse.Namespace, family: str, data: str, out: Path, *extra: str, loo: bool = False) -> None:
    if (out / "config.json").exists():
        print(f"(reusing {out})")
        return
    trilemma("train", "--family", family, "--data", data, "--out", out, *budget(args, family, loo),
             "--seed", args.seed, "--quiet", *extra)


def conditional_runs(args: argparse.Namespace) -> dict[str, Path]:
    runs = {}
    for family in args.families:
        runs[family] = args.work / f"conditional-{family}"
        train(args, family, "mnist", runs[family], "--conditional")
    return runs


def part_conditional(args, runs) -> dict:
    out = {}
    for family, run in runs.items():
        path = args.work / f"conditional-{family}.json"
        trilemma("conditional", run, "--per-class", args.per_class, "--json", path, reuse=path)
        result = read(path)
        out[family] = {"agreement": result["agreement"], "per_class": result["per_class_agreement"],
                       "cas": result["cas"], "cas_real_baseline": result["cas_real_baseline"],
                       "options": result["options"], "target": TARGET_AGREEMENT[family],
                       "met": result["agreement"] >= TARGET_AGREEMENT[family]}
    return out


def part_truncation(args, runs) -> dict:
    out = {}
    for family, run in runs.items():
        path = args.work / f"truncation-{family}.json"
        values = {"gan": "0.25,0.5,0.75,1.0", "vae": "0.25,0.5,0.75,1.0", "diffusion": args.guidance_values}[family]
        trilemma("truncation", run, "--values", values, "--n", args.n, "--json", path, reuse=path)
        result = read(path)
        rows = {row["value"]: row for row in result["rows"]}
        entry = {"knob": result["knob"], "rows": result["rows"]}
        if family == "gan":
            entry["met"] = rows[0.5]["precision"] > rows[1.0]["precision"] and rows[0.5]["recall"] < rows[1.0]["recall"]
        out[family] = entry
    return out


def part_anomaly(args) -> dict:
    """One `anomaly` call per run scores the 1,000 held-out digits and 1,000 uniform-noise images
    together (labels y: the digit, 10 for noise); both AUROCs come from that CSV."""
    from trilemma.capabilities.anomaly import auroc
    from trilemma.data import load_data

    heldout = load_data("mnist")
    real = heldout.x_heldout.numpy().transpose(0, 2, 3, 1)
    noise = np.random.default_rng(0).integers(0, 256, size=real.shape, dtype=np.uint8)
    images = args.work / "heldout-and-noise.npz"
    y = np.r_[heldout.y_heldout.numpy(), np.full(len(noise), 10)].astype(np.int64)
    np.savez(images, x=np.concatenate([real, noise]), y=y)
    table: dict = {}
    for family in args.families:
        table[family] = {"leave_one_out": {}, "noise": {}}
        for held_out in args.loo_classes:
            kept = ",".join(str(c) for c in range(10) if c != held_out)
            run = args.work / f"loo-{family}-{held_out}"
            train(args, family, f"mnist:classes={kept}", run, loo=True)
            scores = args.work / f"loo-{family}-{held_out}.csv"
            trilemma("anomaly", run, "--images", images, "--out", scores, reuse=scores)
            with scores.open() as f:
                rows = list(csv.DictReader(f))
            classes = np.array([int(r["class"]) for r in rows])
            digits = classes < 10
            columns = [name for name in rows[0] if name not in ("index", "class")]
            values = {name: np.array([float(r[name]) for r in rows]) * (-1 if name == "critic_logit" else 1)
                      for name in columns}
            table[family]["leave_one_out"][held_out] = {
                name: auroc(v[digits], classes[digits] == held_out) for name, v in values.items()}
            table[family]["noise"][held_out] = {name: auroc(v, ~digits) for name, v in values.items()}
            print(f"  {family} without {held_out}: leave-one-out AUROC {table[family]['leave_one_out'][held_out]['score']:.3f}"
                  f", noise {table[family]['noise'][held_out]['score']:.3f}", flush=True)
        for name in ("leave_one_out", "noise"):
            columns = table[family][name][args.loo_classes[0]]
            table[family][f"mean_{name}_auroc"] = {
                column: float(np.mean([table[family][name][c][column] for c in args.loo_classes])) for column in columns}
        table[family]["min_noise_auroc"] = float(min(v["score"] for v in table[family]["noise"].values()))
    best = max(args.families, key=lambda f: table[f]["mean_leave_one_out_auroc"]["score"])
    table["best_family"] = best
    table["met_leave_one_out"] = table[best]["mean_leave_one_out_auroc"]["score"] >= 0.80
    table["met_noise"] = all(table[f]["min_noise_auroc"] >= 0.95 for f in args.families)
    return table


def part_augment(args, runs) -> dict:
    path = args.work / "augment.json"
    trilemma("augment", *runs.values(), "--n-real", 100, "--n-generated", args.n_generated,
             "--seeds", args.seeds, "--json", path, reuse=path)
    result = read(path)
    return {"rows": [{k: row[k] for k in ("source", "mean", "std", "gain")} for row in result["rows"]],
            "met": any(row["gain"] > 0 for row in result["rows"][1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for runs and outputs (runs are reused)")
    parser.add_argument("--parts", default="conditional,truncation,anomaly,augment")
    parser.add_argument("--families", default=",".join(default_comparison("image")))
    parser.add_argument("--minutes", type=float, default=3.0, help="GAN and VAE conditional budget")
    parser.add_argument("--diffusion-minutes", type=float, default=6.0)
    parser.add_argument("--steps", help="a step budget for the conditional runs instead: N, or per family "
                        "as vae=2500,gan=1500,diffusion=1500")
    parser.add_argument("--loo-minutes", type=float, default=3.0, help="budget of each leave-one-out run")
    parser.add_argument("--loo-steps", help="a step budget for the leave-one-out runs instead (N or per family)")
    parser.add_argument("--loo-classes", default="0-9", help="held-out classes, e.g. 0-9 or 0,1")
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--n", type=int, default=1000, help="samples per truncation value")
    parser.add_argument("--seeds", type=int, default=3, help="augmentation repeats")
    parser.add_argument("--n-generated", type=int, default=1000, help="generated images per run for augment")
    parser.add_argument("--guidance-values", default="0,1,2,3,5", help="diffusion guidance sweep")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from trilemma.data import parse_classes

    args.families = [f for f in args.families.split(",") if f]
    args.loo_classes = parse_classes(args.loo_classes, "--loo-classes")
    parts = set(args.parts.split(","))
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    if parts & {"conditional", "truncation", "augment"}:
        runs = conditional_runs(args)
        # What each run actually trained: a run stopped early (Ctrl-C) holds fewer steps than asked.
        results["conditional_runs"] = {family: {"steps": read(run / "latest.json")["step"],
                                                "budget": read(run / "config.json").get("budget")}
                                       for family, run in runs.items()}
        if "conditional" in parts:
            results["conditional"] = part_conditional(args, runs)
        if "truncation" in parts:
            results["truncation"] = part_truncation(args, runs)
        if "augment" in parts:
            results["augment"] = part_augment(args, runs)
    if "anomaly" in parts:
        results["anomaly"] = part_anomaly(args)
    conditions = {"budget": {family: budget(args, family) for family in args.families},
                  "loo_budget": {family: budget(args, family, loo=True) for family in args.families}, "families": args.families,
                  "loo_classes": args.loo_classes, "seed": args.seed}
    print(json.dumps({"conditions": conditions, **results}, indent=1, default=float))
    path = record("capabilities", {"conditions": conditions, "results": results, "commands": COMMANDS})
    print(f"recorded in {path}")


if __name__ == "__main__":
    main()
