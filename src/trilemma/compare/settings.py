"""What a comparison runs: families, budget, seeds, sample counts, priorities; and the presets
that make `trilemma compare --out DIR` finish in minutes on a 2-core CPU and do more on a GPU."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from trilemma.errors import UnsupportedRequest
from trilemma.families import default_comparison, family_class, family_names

# On a table the diffusion family's place is taken by TabDDPM, diffusion in the form made for
# tables (multinomial diffusion on the categories): on the customers table of
# benchmarks/bench_tabular_compare.py (90 s, one seed) it scored column shapes / pair trends /
# detection AUC 0.971 / 0.938 / 0.556 against 0.961 / 0.930 / 0.613 for Gaussian diffusion on the
# one-hot rows. `--families vae,gan,diffusion` compares the latter, which can also impute.
TABLE_FAMILIES = ("vae", "gan", "tabddpm")
# privacy (tables: how far the rows keep from the training rows) weighs nothing unless asked for.
DEFAULT_PRIORITIES = {"fidelity": 1.0, "diversity": 1.0, "speed": 0.5, "stability": 0.5, "privacy": 0.0}


# Step counts of the FD-against-NFE curves, per sampler of any family (S Heun steps cost 2S − 1
# evaluations, so every sampler is measured at about 5, 10, 20 and 50).
NFE_STEPS = {"ddim": (5, 10, 20, 50), "dpm-solver++": (5, 10, 20, 50), "euler": (5, 10, 20, 50),
             "heun": (3, 5, 10, 25)}


@dataclass
class CompareSettings:
    """Everything that decides what a comparison trains and how it is measured.

    ``seconds`` (or ``steps``) is each family's training budget, the same for every family and
    seed: on a CPU the steps that many seconds of one idle core run, calibrated once per machine
    (`trilemma.training.calibration`), on a GPU wall seconds; evaluation during training is not
    counted against it. ``evaluations``
    quality points are taken at equal fractions of the budget, the last at its end. ``n_samples`` samples per
    family are scored at the end, ``n_curve`` at each point of the training curve (the end point
    reuses the first ``n_curve`` of the final samples), ``n_nfe`` at each point of the diffusion
    FD-against-NFE curve, ``n_likelihood`` held-out samples in the likelihood bounds of the
    families that have one (`trilemma.evaluation.likelihood`; 0: none).
    """

    data: str = "mnist"
    families: tuple[str, ...] = field(default_factory=default_comparison)
    seconds: float | None = 240.0
    steps: int | None = None
    seeds: int = 1
    evaluations: int = 4
    n_samples: int = 1000
    n_curve: int = 400
    n_nfe: int = 200
    # 300 held-out images: the bounds' standard errors were 0.006 (VAE) and 0.014 (diffusion)
    # bits/dim at 500, where diffusion's bound cost a minute of the main job.
    n_likelihood: int = 300
    nfe_steps: dict[str, tuple[int, ...]] = field(
        default_factory=lambda: dict(NFE_STEPS))
    device: str = "auto"
    precision: str = "auto"
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    priorities: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_PRIORITIES))
    conditional: bool = False
    capabilities: bool = False
    features: str = "auto"  # image features: `trilemma.evaluation.features.extractor_for_dataset`

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    # What must match for a folder to be resumed: everything that changes what is trained or
    # measured. Priorities only change the verdict, so a rerun may change them.
    IDENTITY = ("data", "families", "seconds", "steps", "seeds", "evaluations", "n_samples",
                "n_curve", "n_nfe", "n_likelihood", "nfe_steps", "overrides", "precision", "conditional", "features")

    def differences(self, stored: dict[str, Any]) -> list[str]:
        mine = self.to_json()
        normal = _jsonable
        return [k for k in self.IDENTITY if normal(mine.get(k)) != normal(stored.get(k))]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def preset(kind: str, device_type: str) -> CompareSettings:
    """Defaults for a data kind ("image" or "points") on a device type ("cpu" or "cuda").

    CPU images: the steps 240 s of one idle core run, per family; the three train side by side,
    one single-threaded process each, so that their training, evaluation and the report finish
    within 10 minutes on a 2-core CPU (measured: see the README). CUDA: 5 minutes per
    family, wider networks (each family's `gpu_settings`), 5,000 samples and the ancestral
    sampler on the NFE curve. Points: the 45 s budget of `trilemma train`, and the 2,500
    samples of the mode protocol. Tables: 90 s of one core per family, 2,000 rows.
    """
    families = TABLE_FAMILIES if kind == "table" else default_comparison(kind)
    if kind == "table":  # no FD-against-NFE curve: a table has no FD; the likelihood of its encoding is not the table's
        return CompareSettings(families=families, seconds=90.0, n_samples=2000, n_curve=1000, n_nfe=0,
                               n_likelihood=0, nfe_steps={})
    if kind == "points":
        return CompareSettings(families=families, seconds=45.0, n_samples=2500, n_curve=1000,
                               n_nfe=500, n_likelihood=1000,
                               nfe_steps=dict(NFE_STEPS))
    if device_type == "cuda":
        return CompareSettings(
            families=families, seconds=300.0, n_samples=5000, n_curve=1000, n_nfe=1000, n_likelihood=1000,
            nfe_steps={"ddpm": (100, 250, 1000), **NFE_STEPS},
            overrides={name: dict(family_class(name).gpu_settings) for name in family_names()
                       if family_class(name).gpu_settings},
        )
    return CompareSettings(families=families)


def parse_families(text: str, kind: str | None = None) -> tuple[str, ...]:
    """`vae,diffusion` (or `all`) as registered family names, in the registry's order; with
    `kind`, every family must handle that kind of data ("all": every family that does)."""
    known = family_names()
    if text.strip() == "all":
        return family_names(kind)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise UnsupportedRequest(
            f"--families {text}: unknown family {', '.join(unknown) or '(none given)'} "
            f"(known: {', '.join(known)}, or all)")
    if len(set(names)) != len(names):
        raise UnsupportedRequest(f"--families {text}: a family is named twice")
    if kind is not None:
        unable = [name for name in names if name not in family_names(kind)]
        if unable:
            raise UnsupportedRequest(f"--families {text}: {', '.join(unable)} cannot model {kind} data")
    return tuple(name for name in known if name in names)


def parse_priorities(text: str) -> dict[str, float]:
    """`fidelity=2,speed=1`: weights of the criteria; a criterion not named keeps weight 0."""
    weights = {name: 0.0 for name in DEFAULT_PRIORITIES}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in weights:
            raise UnsupportedRequest(
                f"--priorities {text}: '{part}' is not CRITERION=WEIGHT with a criterion among "
                f"{', '.join(weights)}")
        try:
            weight = float(value)
        except ValueError:
            raise UnsupportedRequest(f"--priorities {text}: weight '{value}' of {name} is not a number") from None
        if not weight >= 0 or weight == float("inf"):
            raise UnsupportedRequest(f"--priorities {text}: weight of {name} must be a finite number ≥ 0")
        weights[name] = weight
    if not any(weights.values()):
        raise UnsupportedRequest(f"--priorities {text}: at least one weight must be positive")
    return weights
