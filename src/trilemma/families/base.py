"""What every family provides, so one loop trains, one path samples and one path evaluates
all of them.

A family owns its networks, its objective and its optimisers (a GAN has two); the training
loop owns the schedule, EMA, budgets, checkpoints and progress. Capabilities that only some
families have (encoding, a denoiser, a critic, …) are separate protocols in `capabilities.py`:
a family has one by having its methods.

A family is one module: a `FamilyConfig` subclass with its settings, a `Family` subclass that
implements the abstract methods and sets the declarations below, and `register(TheFamily)`
(`trilemma.families.registry`). Nothing else in the package names it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from typing import Any, ClassVar

import torch
from torch import nn

from trilemma.errors import UnsupportedRequest


@dataclass
class OptimConfig:
    """Optimisation settings the training loop applies to every optimiser of a family."""

    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 0
    decay: str = "none"  # "cosine": anneal to final_lr_fraction over the budget; "none": constant
    final_lr_fraction: float = 0.05
    grad_clip: float = 0.0  # 0: no clipping
    ema_power: float = 0.75  # EMA decay warms up as 1 - (1 + step)^-power ...
    ema_max_decay: float = 0.999  # ... and is capped here


@dataclass
class DataShape:
    """What a family needs to know about the data to build its networks."""

    kind: str  # "image" or "points"
    sample_shape: tuple[int, ...]
    num_classes: int = 0  # > 0 only for a conditional model
    # A table's rows: their segments, ((kind, width), …) (`trilemma.families.table_layout`);
    # () for images and points.
    layout: tuple[tuple[str, int], ...] = ()

    @property
    def is_image(self) -> bool:
        return self.kind == "image"

    @property
    def is_table(self) -> bool:
        return bool(self.layout)


@dataclass
class SampleOutput:
    x: torch.Tensor  # model space: images in [-1, 1] NCHW, points standardised
    labels: torch.Tensor | None
    nfe: int  # network evaluations per sample


@dataclass
class FamilyConfig:
    data: DataShape
    optim: OptimConfig = field(default_factory=OptimConfig)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> FamilyConfig:
        return _from_dict(cls, d)


def _from_dict(cls, d: dict[str, Any]):
    """Rebuild a (nested) dataclass from its asdict() form; lists become tuples where typed so."""
    kwargs = {}
    hints = {f.name: f for f in fields(cls)}
    for name, value in d.items():
        if name not in hints:
            continue
        default = hints[name].default_factory() if callable(hints[name].default_factory) else hints[name].default
        if is_dataclass(default) and isinstance(value, dict):
            value = _from_dict(type(default), value)
        elif name == "data" and isinstance(value, dict):
            value = DataShape(**{**value, "sample_shape": tuple(value["sample_shape"]),
                                 "layout": tuple((kind, int(w)) for kind, w in value.get("layout", ()))})
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


class Family(nn.Module, ABC):
    """Base class of every family: what one loop trains, one path samples and one path
    evaluates. Subclasses implement the abstract methods and set the declarations."""

    # Declarations, read by the registry and everything that lists families.
    name: ClassVar[str]  # the registry key and CLI name, e.g. "gan"
    label: ClassVar[str]  # how prose names one model of the family, e.g. "GAN"
    config_class: ClassVar[type[FamilyConfig]]
    data_kinds: ClassVar[tuple[str, ...]] = ("image", "points")  # the data it can model
    colour: ClassVar[str]  # its colour in the report's plots
    # Samplers `sample(sampler=…, steps=…)` accepts, and the default; () for a family that samples
    # in one fixed pass, which provenance then names by `provenance_label` ("decoder", "generator").
    samplers: ClassVar[tuple[str, ...]] = ()
    default_sampler: ClassVar[str | None] = None
    provenance_label: ClassVar[str]
    # The folklore about the family, checked by the comparison: {rule: claim}, with rules from
    # `trilemma.compare.claims.RULES`.
    folklore: ClassVar[dict[str, str]] = {}
    in_default_comparison: ClassVar[bool] = False  # trained by `trilemma compare` unless --families
    hybrid: ClassVar[bool] = False  # a hybrid of the classic three: `compare --hybrids` adds it
    # The losses the divergence rule's explosion test reads (`trilemma.training.divergence`);
    # None: every loss training_step returns. Non-finite values count in every loss regardless.
    explosion_watch: ClassVar[tuple[str, ...] | None] = None
    # Settings the comparison's GPU preset changes (wider networks, larger batches).
    gpu_settings: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: FamilyConfig):
        super().__init__()
        self.config = config

    @classmethod
    @abstractmethod
    def defaults(cls, data: DataShape) -> FamilyConfig:
        """The family's measured defaults for this kind of data."""

    @classmethod
    def default_config(cls, data: DataShape, **overrides: Any) -> FamilyConfig:
        """The defaults with named settings replaced: the family's own fields, or those of its
        OptimConfig (batch_size, lr, …). An unknown name is refused with the known ones."""
        from trilemma.families.registry import models

        kind = "table" if data.is_table else data.kind
        if not models(cls, kind):
            raise UnsupportedRequest(f"the {cls.name} family models {' and '.join(cls.data_kinds)}, "
                                     f"not {kind}")
        config = cls.defaults(data)
        own = {f.name for f in fields(config)} - {"data"}
        optim = {f.name for f in fields(OptimConfig)}
        optim_changes = {}
        for key, value in overrides.items():
            if key in own:
                setattr(config, key, _as_type_of(getattr(config, key), key, value))
            elif key in optim:
                optim_changes[key] = _as_type_of(getattr(config.optim, key), key, value)
            else:
                known = ", ".join(sorted((own - {"optim"}) | optim))
                raise UnsupportedRequest(f"the {cls.name} family has no setting '{key}' (known: {known})")
        if optim_changes:
            config.optim = replace(config.optim, **optim_changes)
        return config

    @abstractmethod
    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The optimisers training_step uses, by name (the loop schedules their learning rates)."""

    @abstractmethod
    def averaged_network(self) -> nn.Module:
        """The network whose EMA the loop keeps, and which sampling then uses."""

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """The trainable networks, by the name training_step calls them with ``self.net(name)``.

        Under torchrun the loop wraps each in DistributedDataParallel (and torch.compile under
        --compile) for the length of training; between them they must hold every parameter."""

    def net(self, name: str) -> nn.Module:
        """The network training_step should call: its DDP / compiled wrapper while the loop
        has installed one, else the plain module (sampling and evaluation always get that)."""
        replicas = self.__dict__.get("_replicas")
        if replicas and name in replicas:
            return replicas[name]
        return self.networks()[name]

    def install_replicas(self, replicas: dict[str, nn.Module] | None) -> None:
        """Set (or with None, drop) the wrappers net() hands out. They live outside the module
        tree, so state_dict keys never gain DDP's 'module.' prefix."""
        self.__dict__["_replicas"] = dict(replicas) if replicas else None

    @abstractmethod
    def training_step(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None,
        optimizers: dict[str, torch.optim.Optimizer],
    ) -> dict[str, torch.Tensor]:
        """One optimisation step on a batch in model space; returns detached scalar losses."""

    @abstractmethod
    def sample(
        self,
        n: int,
        generator: torch.Generator,
        labels: torch.Tensor | None = None,
        **options: Any,
    ) -> SampleOutput:
        """n samples in model space (called under torch.no_grad by the sampling path); options
        are the family's own (sampler, steps, truncation, …), anything else is refused."""

    def sampling_provenance(self, **options: Any) -> dict[str, Any]:
        """How `sample(**options)` draws, for the record: ``sampler`` and ``sampler_steps``."""
        return {"sampler": self.provenance_label, "sampler_steps": None}

    # Helpers shared by the families.
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def conditional(self) -> bool:
        return self.config.data.num_classes > 0

    def sample_labels(self, n: int, generator: torch.Generator, labels: torch.Tensor | None):
        """Labels for conditional sampling: the requested ones, or uniform over classes."""
        if not self.conditional:
            if labels is not None:
                raise UnsupportedRequest(f"this {self.name} model is unconditional; it takes no class")
            return None
        if labels is None:
            return torch.randint(
                0, self.config.data.num_classes, (n,), generator=generator, device=generator.device
            ).to(self.device)
        if labels.min() < 0 or labels.max() >= self.config.data.num_classes:
            raise UnsupportedRequest(
                f"class {int(labels.max())} is out of range: the model knows "
                f"{self.config.data.num_classes} classes (0-{self.config.data.num_classes - 1})"
            )
        return labels.to(self.device)

    grad_scaler: torch.amp.GradScaler | None = None  # set by the training loop for fp16
    # The share of the training budget spent, in [0, 1], set by the training loop before each
    # step (a family trained in stages switches on it; on a step budget it is step / steps).
    training_progress: float = 0.0

    def optimize(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Backward, gradient-norm clipping (when configured), update; loss-scaled under fp16."""
        optimizer.zero_grad(set_to_none=True)
        scaler = self.grad_scaler
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if self.config.optim.grad_clip > 0:
            params = [p for group in optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.config.optim.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
        else:
            optimizer.step()

    @staticmethod
    def reject_options(options: dict[str, Any], family: str) -> None:
        if options:
            names = ", ".join(sorted(options))
            raise UnsupportedRequest(f"the {family} family has no sampling option(s): {names}")


def randn(shape, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Seeded Gaussian noise; the generator lives on the CPU or on the model's device."""
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def _as_type_of(current: Any, key: str, value: Any) -> Any:
    """`value` as a value of the setting `key`, whose default is `current`; a tuple setting also
    takes a comma list ("32,64,64"). Anything else is refused in one line naming the setting."""
    def refuse(expected: str) -> UnsupportedRequest:
        return UnsupportedRequest(f"setting '{key}' takes {expected} (default {current!r}), not {value!r}")

    if isinstance(current, tuple):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            raise refuse("a list such as " + ",".join(map(str, current)))
        kind = type(current[0]) if current else str
        try:
            return tuple(_as_type_of(kind(), key, _number(item) if isinstance(item, str) else item)
                         for item in items)
        except UnsupportedRequest:
            raise refuse(f"a list of {kind.__name__} values") from None
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise refuse("true or false")
        return value
    if isinstance(current, int) and (isinstance(value, bool) or not isinstance(value, int)):
        raise refuse("a whole number")
    if isinstance(current, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise refuse("a number")
        return float(value)
    if isinstance(current, str) and not isinstance(value, str):
        raise refuse("a word")
    return value


def _number(text: str) -> Any:
    text = text.strip()
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
