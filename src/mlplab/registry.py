"""One registry per kind of name a user can type (activation, loss, optimizer, ...).

Looking up an unknown name raises :class:`~mlplab.errors.ConfigError` listing the valid names.
"""

from __future__ import annotations

import inspect
import math
import numbers
import reprlib
from typing import Any, Callable, Generic, Iterator, TypeVar

from mlplab.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._canonical: dict[str, str] = {}  # every name and alias -> the name it was registered under

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            for key in (name, *aliases):
                self._items[key] = obj
                self._canonical[key] = name
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        self._items[name] = obj
        self._canonical[name] = name

    @staticmethod
    def _key(name: object) -> str:
        return str(name).strip().lower().replace("-", "_")

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def canonical(self, name: str) -> str:
        """The name ``name`` (any case, spelling with dashes or alias) was registered under:
        ``"Adam"`` -> ``"adam"``, ``"plateau"`` -> ``"reduce_on_plateau"``."""
        key = self._key(name)
        if key in self._canonical:
            return self._canonical[key]
        raise ConfigError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")

    def names(self) -> list[str]:
        return sorted(self._items)

    def canonical_names(self) -> list[str]:
        """The registered names without their aliases, in registration order."""
        return list(dict.fromkeys(self._canonical.values()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))


_REPR = reprlib.Repr()
_REPR.maxstring, _REPR.maxlong = 120, 40


def short_repr(value: Any) -> str:
    """``repr(value)`` shortened for a one-line message (a 400-digit integer, a long string)."""
    return _REPR.repr(value)


def settings_of(obj: Callable, skip: tuple[str, ...] = ()) -> dict[str, inspect.Parameter]:
    """The settings a registered class (its ``__init__``) or factory function takes by keyword."""
    func = obj.__init__ if isinstance(obj, type) else obj
    return {k: p for k, p in inspect.signature(func).parameters.items()
            if k not in ("self", *skip) and p.kind is p.POSITIONAL_OR_KEYWORD}


def _finite(value: numbers.Real) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def check_settings(kind: str, name: str, obj: Callable, settings: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    """Before ``obj(**settings)`` (a registered class or factory function): every key is a setting
    of ``obj`` and every value has the type of its default (a bool for a bool, a finite number for
    a number), so a typo, ``beta1=x`` or ``std=nan`` is one clear line naming the setting instead
    of an error from inside the constructor, or a value that breaks training later."""
    params = settings_of(obj, skip)
    for key, value in settings.items():
        if key not in params:
            known = ", ".join(params) or "none"
            raise ConfigError(f"{kind} {name!r} has no setting {key!r} (its settings: {known})")
        default = params[key].default
        if isinstance(default, bool):
            if type(value).__name__ not in ("bool", "bool_"):
                raise ConfigError(f"{kind} {name!r}: {key} must be true or false, got {short_repr(value)}")
        elif isinstance(default, (int, float)):
            if type(value).__name__ in ("bool", "bool_") or not isinstance(value, numbers.Real):
                raise ConfigError(f"{kind} {name!r}: {key} must be a number, got {short_repr(value)}")
            if not _finite(value):
                raise ConfigError(f"{kind} {name!r}: {key} must be a finite number, got {short_repr(value)}")
            if isinstance(default, int) and not float(value).is_integer():
                raise ConfigError(f"{kind} {name!r}: {key} must be a whole number, got {short_repr(value)}")
