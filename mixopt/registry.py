"""One registry helper for every pluggable family: surrogates, strategies and online mixers.

A registry maps a name to a class. Entries are ``"module:Class"`` strings (imported on first use, so a
registry can be listed, and a config validated against it, without importing torch or BoTorch) or classes
(added with the :meth:`Registry.register` decorator). A new surrogate, strategy or mixer is one file plus
one line in its family's registry.

>>> reg = Registry("widget")
>>> reg.add("dict", "builtins:dict")
>>> reg.names()
['dict']
>>> reg.create("dict", a=1)
{'a': 1}
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable

from mixopt.errors import MixoptError

__all__ = ["Registry"]


class Registry:
    """Name -> class for one family (``kind`` names it in errors: ``unknown surrogate 'magic'``).

    aliases: extra names that resolve to a registered one (``{"default": "progress"}``).
    error: the :class:`MixoptError` subclass raised for unknown names and bad parameters.
    """

    def __init__(self, kind: str, *, aliases: dict[str, str] | None = None,
                 error: type[MixoptError] = MixoptError) -> None:
        self.kind = kind
        self.aliases = dict(aliases or {})
        self.error = error
        self._entries: dict[str, str | type] = {}
        self._loaders: list[str] = []

    def add(self, name: str, target: str | type) -> None:
        """Register ``target`` (a class or ``"module:Class"``) under ``name``."""
        self._entries[name] = target

    def register(self, *names: str) -> Callable[[type], type]:
        """Class decorator: register the class under each of ``names``."""

        def deco(cls: type) -> type:
            for n in names:
                self._entries[n] = cls
            return cls

        return deco

    def load_on_first_use(self, *modules: str) -> None:
        """Modules whose import registers entries (decorator style); imported before any lookup."""
        self._loaders.extend(modules)

    def _load(self) -> None:
        while self._loaders:
            importlib.import_module(self._loaders.pop(0))

    def names(self, *, aliases: bool = False) -> list[str]:
        """Registered names in registration order (and the aliases, when asked)."""
        self._load()
        return list(self._entries) + ([a for a in self.aliases if a not in self._entries] if aliases else [])

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.resolve(name) in self.names()

    def resolve(self, name: str) -> str:
        """The registered name behind ``name`` (follows aliases)."""
        return self.aliases.get(name, name)

    def check(self, name: str) -> str:
        """``name`` if it is registered (or an alias), else a one-line error listing the choices."""
        if name not in self:
            raise self.error(f"unknown {self.kind} {name!r}; choose one of {', '.join(self.names(aliases=True))}")
        return name

    def get(self, name: str) -> type:
        """The class registered under ``name``."""
        key = self.resolve(self.check(name))
        target = self._entries[key]
        if isinstance(target, str):
            mod, cls = target.split(":")
            target = getattr(importlib.import_module(mod), cls)
            self._entries[key] = target
        return target

    def create(self, name: str, /, **params):
        """An instance of ``name`` built with ``params``; unknown parameters are a one-line error."""
        cls = self.get(name)
        sig = inspect.signature(cls.__init__)
        takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        accepted = {p for p in sig.parameters if p != "self"}
        unknown = sorted(set(params) - accepted)
        if unknown and not takes_any:
            raise self.error(f"{self.kind} {name!r}: unknown parameter(s) {unknown}; "
                             f"accepted: {sorted(accepted - {'args', 'kwargs', 'params'})}")
        try:
            return cls(**params)
        except TypeError as e:
            raise self.error(f"{self.kind} {name!r}: bad parameters {sorted(params)}: {e}") from None

    def accepts(self, name: str, param: str) -> bool:
        """Whether the class registered under ``name`` takes a constructor parameter ``param``."""
        return param in inspect.signature(self.get(name).__init__).parameters
