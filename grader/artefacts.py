"""The artefacts checks read: the registry of their providers.

An artefact is something a submission gives that one or more checks read: the code parsed, an
entry's validated clips, their scores against the truth, the figures the student reports. Each
is made by one provider, a function ``make(ctx) -> value`` declared where it is made::

    @provides("reconstruct.metrics", needs=("reconstruct.run",), kept=Measured)
    def scored_clips(ctx: CheckContext) -> Measured: ...

- ``needs``: the artefacts the provider itself reads (``ctx.need(name)`` refuses any other);
- ``kept``: the type the value is kept as between gradings (:mod:`grader.evidence`), anything
  pydantic validates (dataclasses, models, lists, dicts of them); None for what lives only while
  one submission is graded (host paths into its scratch space: an entry's run folder, the parsed code).

:meth:`grader.context.CheckContext.need` makes an artefact on its first need and hands out the same
value afterwards, so each is made once per submission. Every provider is registered when its
module is imported: on the registry's first use (:func:`provider`), every module of
``grader/checks/`` and of :data:`SUPPORT_MODULES` is imported.

A check module declares ``NEEDS``, the artefacts its check reads (:func:`needs_of`); with the
providers' own ``needs`` (:func:`closure`) and the module each is made in (:attr:`Provider.module`),
the pipeline orders a rubric's items (:func:`grader.pipeline.grading_order`).

This module imports no grader module at its top (the modules that make artefacts import it): a
provider's ``ctx`` is a :class:`grader.context.CheckContext`.
"""
from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CHECKS_PACKAGE = "grader.checks"
SUPPORT_MODULES = ("grader.context", "grader.model_use")
"""Modules besides the checks' that make artefacts (an entry's runs; whether the model made the audio)."""


@dataclass(frozen=True)
class Provider:
    """How one artefact is made: ``make(ctx)``, after the artefacts it ``needs``; ``kept``: the type its value is
    kept as between gradings, None when it is made again in each grading (see the module's notes)."""

    name: str
    make: Callable[[Any], Any]
    needs: tuple[str, ...] = ()
    kept: Any = None

    @property
    def module(self) -> str:
        """The module that makes it (``grader.checks.reconstruct``)."""
        return self.make.__module__

    @functools.cached_property
    def adapter(self):
        """The pydantic adapter of :attr:`kept` (which turns a value into JSON values and back)."""
        from pydantic import TypeAdapter

        return TypeAdapter(self.kept)


_PROVIDERS: dict[str, Provider] = {}


def provides(name: str, *, needs: tuple[str, ...] = (), kept: Any = None):
    """Register the decorated function as the provider of artefact ``name`` (see the module's notes)."""
    def register(make: Callable[[Any], Any]) -> Callable[[Any], Any]:
        if name in _PROVIDERS and _PROVIDERS[name].make is not make:
            raise ValueError(f"two providers of artefact {name!r}: {_PROVIDERS[name].module} and {make.__module__}")
        _PROVIDERS[name] = Provider(name, make, tuple(needs), kept)
        return make
    return register


@functools.cache
def _registered() -> dict[str, Provider]:
    """Every provider, once every module that makes artefacts has been imported (each registers its own)."""
    import grader.checks

    checks = (f"{CHECKS_PACKAGE}.{module.name}" for module in pkgutil.iter_modules(grader.checks.__path__))
    for module in (*SUPPORT_MODULES, *checks):
        importlib.import_module(module)
    return _PROVIDERS


def provider(name: str) -> Provider:
    """The provider of artefact ``name``.

    Raises:
        KeyError: no module registers one (a misspelt name in a ``NEEDS`` or a provider's ``needs``).
    """
    try:
        return _registered()[name]
    except KeyError:
        raise KeyError(f"no provider makes the artefact {name!r}; the artefacts are {sorted(_registered())}") from None


def needs_of(check: str) -> tuple[str, ...]:
    """The artefacts the check kind ``check`` declares it reads (its module's ``NEEDS``)."""
    return tuple(getattr(importlib.import_module(f"{CHECKS_PACKAGE}.{check}"), "NEEDS", ()))


def closure(names: tuple[str, ...]) -> set[str]:
    """``names`` and every artefact their providers need, however deep."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += provider(name).needs
    return seen
