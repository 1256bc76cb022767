"""The family contract: a family defined here, in the test file alone, registers and then trains,
samples, evaluates and is compared through the CLI, with no other file of the package changed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from torch import nn

from trilemma.families import (
    Family,
    FamilyConfig,
    OptimConfig,
    SampleOutput,
    default_comparison,
    family_names,
    register,
    unregister,
)
from trilemma.families.base import randn


class DiagonalGaussian(nn.Module):
    """A mean and a log-scale per dimension; forward is the per-sample negative log-likelihood."""

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(shape))
        self.log_scale = nn.Parameter(torch.zeros(shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.log_scale.exp()
        return (0.5 * z.square() + self.log_scale).flatten(1).sum(1)


@dataclass
class ToyConfig(FamilyConfig):
    temperature: float = 1.0


class Toy(Family):
    """The smallest family there is: a diagonal Gaussian fitted by gradient descent."""

    name = "toy-gaussian"
    label = "toy Gaussian"
    config_class = ToyConfig
    colour = "#9467bd"
    provenance_label = "gaussian"
    folklore: ClassVar[dict[str, str]] = {"blurry": "Toy Gaussians are blurry."}

    def __init__(self, config: ToyConfig):
        super().__init__(config)
        self.gaussian = DiagonalGaussian(config.data.sample_shape)

    @classmethod
    def defaults(cls, data):
        return ToyConfig(data=data, optim=OptimConfig(batch_size=64, lr=0.05))

    def build_optimizers(self):
        return {"gaussian": torch.optim.Adam(self.gaussian.parameters(), lr=self.config.optim.lr)}

    def averaged_network(self):
        return self.gaussian

    def networks(self):
        return {"gaussian": self.gaussian}

    def training_step(self, x, labels, optimizers):
        loss = self.net("gaussian")(x).mean()
        self.optimize(loss, optimizers["gaussian"])
        return {"loss": loss.detach()}

    @torch.no_grad()
    def sample(self, n, generator, labels=None, **options):
        temperature = float(options.pop("temperature", None) or self.config.temperature)
        self.reject_options(options, self.name)
        noise = randn((n, *self.config.data.sample_shape), generator, self.device)
        x = self.gaussian.mean + temperature * self.gaussian.log_scale.exp() * noise
        return SampleOutput(x.clamp(-1, 1) if self.config.data.is_image else x, None, nfe=1)


@pytest.fixture
def toy():
    register(Toy)
    yield Toy
    unregister(Toy.name)


def test_a_family_defined_outside_the_package_runs_through_every_command(toy, run_cli, tmp_path):
    run = tmp_path / "run"
    code, _, err = run_cli("train", "--family", toy.name, "--data", "ring8", "--steps", "40",
                             "--out", run, "--quiet")
    assert code == 0, err
    assert json.loads((run / "config.json").read_text())["family"] == toy.name
    assert (run / "samples.png").stat().st_size > 0

    code, _, err = run_cli("sample", run, "--n", "300", "--out", tmp_path / "s.npz")
    assert code == 0, err
    code, _, err = run_cli("evaluate", tmp_path / "s.npz", "--data", "ring8", "--json", tmp_path / "e.json")
    assert code == 0, err
    result = json.loads((tmp_path / "e.json").read_text())
    assert result["provenance"]["sampler"] == "gaussian" and result["provenance"]["nfe"] == 1
    # A Gaussian fitted to a ring of 8 modes covers the ring's spread but not its modes.
    assert result["metrics"]["high_quality_fraction"] < 0.5

    code, _, err = run_cli("compare", "--data", "ring8", "--families", f"vae,{toy.name}", "--steps", "30",
                             "--samples", "200", "--evaluations", "2", "--out", tmp_path / "cmp", "--quiet")
    assert code == 0, err
    results = json.loads((tmp_path / "cmp" / "results.json").read_text())
    assert list(results["families"]) == ["vae", toy.name]
    assert any(c["family"] == toy.name and c["claim"] == "Toy Gaussians are blurry." for c in results["claims"])
    report = (tmp_path / "cmp" / "report.html").read_text()
    assert toy.name in report and "Toy Gaussians are blurry." in report


def test_the_registry_lists_it_without_putting_it_in_the_default_comparison(toy, run_cli, tmp_path, capsys):
    assert family_names()[-1] == toy.name and toy.name not in default_comparison()
    with pytest.raises(SystemExit) as stop:
        run_cli("train", "--family", "no-such-family", "--data", "ring8", "--out", tmp_path / "x")
    assert stop.value.code == 2 and toy.name in capsys.readouterr().err  # choices from the registry


def test_an_incomplete_family_is_refused_with_what_it_lacks():
    class NoStep(Family):  # everything but training_step
        name, label, config_class, colour, provenance_label = "no-step", "x", ToyConfig, "#000", "x"
        __init__, defaults = Toy.__init__, Toy.__dict__["defaults"]
        build_optimizers, averaged_network, networks = Toy.build_optimizers, Toy.averaged_network, Toy.networks
        sample = Toy.sample

    with pytest.raises(TypeError, match="does not implement training_step"):
        register(NoStep)
    with pytest.raises(TypeError, match="abstract"):
        NoStep(ToyConfig(data=None))
    with pytest.raises(TypeError, match="does not declare colour"):
        register(type("NoColour", (Toy,), {"name": "no-colour", "colour": ""}))
    with pytest.raises(TypeError, match="unknown data kinds"):
        register(type("Tables", (Toy,), {"name": "tables", "data_kinds": ("spreadsheet",)}))
    with pytest.raises(ValueError, match="registered already"):
        register(type("Again", (Toy,), {"name": "vae"}))
    assert not {"no-step", "no-colour", "tables"} & set(family_names())


def test_every_family_declares_folklore_the_claims_can_judge():
    from trilemma.compare.claims import RULES
    from trilemma.families import registered

    for name, cls in registered().items():
        assert set(cls.folklore) <= set(RULES), name
