"""One generic name → object registry, instantiated for each kind of pluggable part.

A registry maps a short name (``"conv"``, ``"split"``, ``"bce"``) to a class or a function.
Public arguments across genvae accept either such a name or the object itself; :meth:`Registry.resolve`
is the single place where that choice is made.

Example:
    >>> import genvae as gv
    >>> @gv.losses.register("l1")
    ... def l1(out, x):
    ...     return (out.recon - x).abs()
    >>> gv.losses.get("l1") is l1
    True
    >>> _ = gv.losses.registry.unregister("l1")
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

from genvae._init_arguments import record_init_arguments

T = TypeVar("T")

__all__ = ["Registry", "UnknownNameError", "registry_of"]


class UnknownNameError(KeyError):
    """An unknown registry name. A ``KeyError`` whose message lists the known names."""

    def __str__(self) -> str:  # KeyError would quote the message; keep it readable
        return str(self.args[0]) if self.args else ""


# Classes registered in a registry that records constructor arguments: class -> (kind, name).
# Kept outside the classes so that an unregistered subclass does not inherit its parent's entry.
_CLASS_NAMES: dict[type, tuple[str, str]] = {}
_REGISTRIES: dict[str, Registry[Any]] = {}


def registry_of(kind: str) -> Registry[Any]:
    """Return the registry for ``kind`` (``"encoders"``, ``"decoders"``, ``"conditioners"``,
    ``"likelihoods"``, ``"losses"``, ``"models"``, ``"samplers"``, ...)."""
    try:
        return _REGISTRIES[kind]
    except KeyError:
        known = ", ".join(sorted(_REGISTRIES))
        raise UnknownNameError(f"kind: expected one of {known}, got {kind!r}") from None


def registered_name(cls: type) -> tuple[str, str] | None:
    """``(kind, name)`` under which ``cls`` itself (not a parent) was registered, or None."""
    return _CLASS_NAMES.get(cls)


class Registry(Generic[T]):
    """A named collection of classes or functions of one kind.

    Args:
        kind: what the registry holds, in the plural (``"encoders"``); used in error messages and
            as the key under which saved models refer to it.
        record_config: when true, registering a class also makes its instances record their
            constructor arguments, so that :func:`genvae.save` / :func:`genvae.load` can rebuild them.

    Example:
        >>> reg = Registry("widgets", record_config=False)
        >>> @reg.register("round")
        ... class Round: ...
        >>> reg.names()
        ['round']
        >>> reg.get("square")
        Traceback (most recent call last):
        ...
        genvae.registry.UnknownNameError: widgets: unknown name 'square'; known names: round
    """

    def __init__(self, kind: str, *, record_config: bool = False) -> None:
        self.kind = kind
        self.record_config = record_config
        self._entries: dict[str, T] = {}
        if kind in _REGISTRIES:
            raise ValueError(f"kind: a registry named {kind!r} exists already")
        _REGISTRIES[kind] = self

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, override: bool = False) -> T: ...

    def register(self, name: str, obj: T | None = None, *, override: bool = False) -> Any:
        """Register ``obj`` under ``name``; without ``obj``, return a decorator that does.

        A name that is taken is an error unless ``override=True``.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, got {name!r}")

        def add(target: T) -> T:
            if name in self._entries and not override:
                raise ValueError(
                    f"{self.kind}: the name {name!r} is taken by {self._entries[name]!r}; "
                    "choose another name or pass override=True"
                )
            if self.record_config and isinstance(target, type):
                record_init_arguments(target)
                _CLASS_NAMES[target] = (self.kind, name)
            self._entries[name] = target
            return target

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> T:
        """Remove and return the entry ``name`` (mainly for tests and notebooks that re-run cells)."""
        obj = self.get(name)
        del self._entries[name]
        if isinstance(obj, type) and _CLASS_NAMES.get(obj) == (self.kind, name):
            del _CLASS_NAMES[obj]
        return obj

    def get(self, name: str) -> T:
        """Return the entry ``name``; an unknown name raises :class:`UnknownNameError`."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            known = ", ".join(self.names()) or "(none)"
            raise UnknownNameError(f"{self.kind}: unknown name {name!r}; known names: {known}") from None

    def names(self, pattern: str | None = None) -> list[str]:
        """Sorted registered names, optionally filtered by a shell-style ``pattern`` (``"kl*"``)."""
        names = sorted(self._entries)
        return names if pattern is None else fnmatch.filter(names, pattern)

    def resolve(self, spec: Any, *, argument: str, **kwargs: Any) -> Any:
        """Turn a public argument into an object: a name is looked up (and, for a class, built
        with ``kwargs``); anything else is returned as it is.

        ``argument`` names the public argument in the error message of an unknown name.
        """
        if isinstance(spec, str):
            try:
                entry = self.get(spec)
            except UnknownNameError as err:
                raise UnknownNameError(f"{argument}: {err}") from None
            return entry(**kwargs) if isinstance(entry, type) else entry
        return spec

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={self.names()})"
