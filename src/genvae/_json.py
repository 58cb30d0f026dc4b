"""Reading a JSON object from a file's text, bounded: the one reader behind ``model.json``
(:mod:`genvae.config`) and a run's JSON files (:mod:`genvae.runfiles`), and the nesting count the
checkpoint header uses too.

The nesting depth is counted before parsing (:func:`json_depth`), so the parser never recurses
deeply (100,000 nested brackets give a one-line error, not a ``RecursionError``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

__all__ = ["json_depth", "json_object", "json_type"]

_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str, limit: int) -> int:
    """How deeply the brackets of JSON ``text`` nest (strings removed first), counted only up to
    just past ``limit``, so a parser is never asked to recurse deeper than that."""
    depth = deepest = 0
    for match in _JSON_BRACKET.finditer(_JSON_STRING.sub('""', text)):
        depth += 1 if match.group() in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > limit:
            break
    return deepest


def json_type(value: Any) -> str:
    """What a parsed JSON value is, for messages: ``"an array"``, ``"a number (3)"``, ``"null"``."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), f"a number ({value!r})" if isinstance(value, int | float) else type(value).__name__)


def json_object(
    text: str,
    where: object,
    what: str,
    *,
    limit: int,
    error: Callable[[str], Exception] = ValueError,
    object_is: str | None = None,
) -> dict[str, Any]:
    """The JSON object in ``text``, the contents of file ``where``: its nesting checked against
    ``limit`` before it is parsed. Anything else raises ``error`` with one line naming ``where``:
    nested too deeply, not JSON (``not {what}``, e.g. "a genvae model description"), or not an
    object (``expected a JSON object ({object_is}), got an array``)."""
    if json_depth(text, limit) > limit:
        raise error(f"{where}: expected JSON nested at most {limit} levels deep, got deeper nesting")
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise error(f"{where}: not {what} (invalid JSON: {err})") from None
    if not isinstance(document, dict):
        described = f" ({object_is})" if object_is else ""
        raise error(f"{where}: expected a JSON object{described}, got {json_type(document)}")
    return document
