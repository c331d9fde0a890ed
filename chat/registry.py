"""Name -> implementation registries (backends, formats, judges, generators) listed by `turnwise list`."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from chat.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """A small ordered mapping of names to implementations, each with a one-line description."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, tuple[T, str]] = {}

    def register(self, name: str, description: str = "") -> Callable[[T], T]:
        def decorator(item: T) -> T:
            self.add(name, item, description)
            return item
        return decorator

    def add(self, name: str, item: T, description: str = "") -> None:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        doc = description or (getattr(item, "__doc__", None) or "").strip().splitlines()[0:1]
        self._items[name] = (item, doc if isinstance(doc, str) else (doc[0] if doc else ""))

    def get(self, name: str) -> T:
        try:
            return self._items[name][0]
        except KeyError:
            known = ", ".join(self._items) or "none"
            raise ConfigError(f"unknown {self.kind} {name!r} (known: {known})") from None

    def describe(self) -> Iterator[tuple[str, str]]:
        for name, (_, description) in self._items.items():
            yield name, description

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


#: Every registry the CLI can list, by plural name (`turnwise list backends`).
REGISTRIES: dict[str, Registry] = {}


def registry(plural: str, kind: str) -> Registry:
    """The registry called `plural`, created on first use."""
    if plural not in REGISTRIES:
        REGISTRIES[plural] = Registry(kind)
    return REGISTRIES[plural]
