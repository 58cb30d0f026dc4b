"""Recording the arguments a registered class was built with (what :func:`genvae.save` writes).

Below both :mod:`genvae.registry` (which wraps a class's ``__init__`` when the class is registered)
and :mod:`genvae.config` (which reads the recorded arguments back), so neither imports the other's
module for it.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any

__all__ = ["INIT_ARGUMENTS_ATTR", "record_init_arguments"]

#: The attribute in which an instance of a registered class keeps its constructor arguments.
INIT_ARGUMENTS_ATTR = "_genvae_init_arguments"


def record_init_arguments(cls: type) -> None:
    """Wrap ``cls.__init__`` so that instances remember the arguments they were built with.

    Only the arguments of the outermost ``__init__`` (the instance's own class) are kept: a
    registered parent's ``__init__`` called through ``super()`` does not overwrite them.
    """
    own = cls.__dict__.get("__init__")
    if own is not None and getattr(own, "_genvae_records", False):
        return
    init = cls.__init__  # type: ignore[misc]  # the class's own, or the inherited one (then wrapped for this class)
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if type(self) is cls:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments: dict[str, Any] = {}
            for pname, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[pname].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    arguments.update(value)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    if value:
                        arguments[f"*{pname}"] = list(value)
                else:
                    arguments[pname] = value
            object.__setattr__(self, INIT_ARGUMENTS_ATTR, arguments)
        init(self, *args, **kwargs)

    __init__._genvae_records = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]
