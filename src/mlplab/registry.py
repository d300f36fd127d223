"""One registry per kind of name a user can type (activation, loss, optimizer, ...).

Looking up an unknown name raises :class:`~mlplab.errors.ConfigError` listing the valid names.
"""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

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
