"""The one list of families. Everything that enumerates families (the CLI's choices, the
comparison's order and defaults, the report's colours, the folklore claims, the tests) reads it
from here, so adding a family is one module that ends with ``register(MyFamily)``.

Families are kept in registration order: the built-in ones register as `trilemma.families` is
imported (VAE, GAN, diffusion), anything else when its module is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trilemma.errors import UnsupportedRequest

if TYPE_CHECKING:
    from trilemma.families.base import Family

_FAMILIES: dict[str, type[Family]] = {}

# What a family class must declare, beside the abstract methods of `Family`.
_DECLARED = ("name", "label", "config_class", "data_kinds", "colour", "provenance_label")
# A family of "points" also models a table's encoded rows (vectors); one of "table" only those.
_KINDS = ("image", "points", "table")


def register(cls: type[Family]) -> type[Family]:
    """Add a family class to the registry (usable as a decorator); returns it unchanged.

    Refuses, with a message naming what is missing, a class that leaves an abstract method
    unimplemented or a declaration unset, a data kind other than "image", "points" and "table", a
    default sampler that is not among its samplers, or a name taken by another class."""
    from trilemma.families.base import Family, FamilyConfig

    if not (isinstance(cls, type) and issubclass(cls, Family)):
        raise TypeError(f"{cls!r} is not a subclass of trilemma.families.Family")
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise TypeError(f"family {cls.__name__} does not implement {', '.join(missing)}")
    unset = [name for name in _DECLARED if not getattr(cls, name, None)]
    if unset:
        raise TypeError(f"family {cls.__name__} does not declare {', '.join(unset)}")
    if not issubclass(cls.config_class, FamilyConfig):
        raise TypeError(f"family {cls.name}: config_class must subclass FamilyConfig")
    strange = [kind for kind in cls.data_kinds if kind not in _KINDS]
    if strange:
        raise TypeError(f"family {cls.name}: unknown data kinds {strange} (known: {', '.join(_KINDS)})")
    if cls.samplers and cls.default_sampler not in cls.samplers:
        raise TypeError(f"family {cls.name}: default sampler {cls.default_sampler!r} is not one of "
                        f"its samplers {cls.samplers}")
    if cls.name in _FAMILIES and _FAMILIES[cls.name] is not cls:
        raise ValueError(f"a family named '{cls.name}' is registered already ({_FAMILIES[cls.name]!r})")
    _FAMILIES[cls.name] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a family (a plug-in's, or a test's); unknown names are ignored."""
    _FAMILIES.pop(name, None)


def family_names(kind: str | None = None) -> tuple[str, ...]:
    """Every registered family, in registration order; with `kind`, those that handle it."""
    return tuple(n for n, cls in _FAMILIES.items() if kind is None or models(cls, kind))


def models(cls: type[Family], kind: str) -> bool:
    """Whether the family models data of this kind: its own kinds, and tables for a family of points."""
    return kind in cls.data_kinds or (kind == "table" and "points" in cls.data_kinds)


def default_comparison(kind: str | None = None) -> tuple[str, ...]:
    """The families `trilemma compare` trains when none are named: the classic trilemma."""
    return tuple(n for n in family_names(kind) if _FAMILIES[n].in_default_comparison)


def hybrid_families(kind: str | None = None) -> tuple[str, ...]:
    """The hybrids (`Family.hybrid`) that handle `kind`: what `trilemma compare --hybrids` adds."""
    return tuple(n for n in family_names(kind) if _FAMILIES[n].hybrid)


def family_class(name: str) -> type[Family]:
    try:
        return _FAMILIES[name]
    except KeyError:
        raise UnsupportedRequest(f"unknown family '{name}' (known: {', '.join(_FAMILIES)})") from None


def registered() -> dict[str, type[Family]]:
    """A copy of the registry: name to class, in registration order."""
    return dict(_FAMILIES)
