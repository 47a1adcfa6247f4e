"""A name -> class table for the simulated venue's pluggable models.

The venue parameters `queue_model=` and `fill_model=` name a model; the model's module registers
its class under that name with a decorator beside the class, so the name, the class and its
formula sit together and nothing else lists them. The venue config checks a name against the
table and the venue builds the class it finds there.
"""

from __future__ import annotations

from collections.abc import Callable


class Registry[T](dict[str, type[T]]):
    """Model classes by the name a venue parameter gives them, in the order they were registered."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        """A class decorator entering the class under `name`."""

        def add(cls: type[T]) -> type[T]:
            if name in self:
                # two classes under one name: the later would silently win depending on import order
                raise ValueError(f"{self.kind} {name!r} is already registered, by {self[name].__qualname__}")
            self[name] = cls
            return cls

        return add

    def names(self) -> tuple[str, ...]:
        return tuple(self)
