"""One registry per kind of name a user can type (activation, loss, optimizer, ...).

Looking up an unknown name raises :class:`~mlplab.errors.ConfigError` listing the valid names.
"""

from __future__ import annotations

import inspect
import numbers
from typing import Any, Callable, Generic, Iterator, TypeVar

from mlplab.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            for key in (name, *aliases):
                self._items[key] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        self._items[name] = obj

    def get(self, name: str) -> T:
        key = str(name).strip().lower().replace("-", "_")
        if key in self._items:
            return self._items[key]
        valid = ", ".join(sorted(self._items))
        raise ConfigError(f"unknown {self.kind} {name!r}; valid: {valid}")

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().lower().replace("-", "_") in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))


def check_settings(kind: str, name: str, cls: type, settings: dict[str, Any], skip: tuple[str, ...] = ()) -> None:
    """Before ``cls(**settings)``: every key is a setting of ``cls`` and every value has the type
    of its default (a bool for a bool, a number for a number), so a typo or ``beta1=x`` is one
    clear line naming the setting instead of an error from inside the constructor."""
    params = {k: p for k, p in inspect.signature(cls.__init__).parameters.items()
              if k not in ("self", *skip) and p.kind is p.POSITIONAL_OR_KEYWORD}
    for key, value in settings.items():
        if key not in params:
            known = ", ".join(params) or "none"
            raise ConfigError(f"{kind} {name!r} has no setting {key!r} (its settings: {known})")
        default = params[key].default
        if isinstance(default, bool):
            if type(value).__name__ not in ("bool", "bool_"):
                raise ConfigError(f"{kind} {name!r}: {key} must be true or false, got {value!r}")
        elif isinstance(default, (int, float)):
            if type(value).__name__ in ("bool", "bool_") or not isinstance(value, numbers.Real):
                raise ConfigError(f"{kind} {name!r}: {key} must be a number, got {value!r}")
            if isinstance(default, int) and not float(value).is_integer():
                raise ConfigError(f"{kind} {name!r}: {key} must be a whole number, got {value!r}")
