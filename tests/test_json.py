"""genvae._json: the one bounded JSON-object reader (model.json, a run's JSON files): one line for
nesting too deep (counted before parsing), text that is not JSON, and JSON that is not an object."""

from __future__ import annotations

import pytest

from genvae._json import json_depth, json_object, json_type


class Refused(ValueError):
    pass


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "f.json: expected JSON nested at most 4 levels deep, got deeper nesting"),
        ('{"a": ', "f.json: not a test file (invalid JSON: Expecting value: line 1 column 7 (char 6))"),
        ("[1]", "f.json: expected a JSON object (a test object), got an array"),
        ("3", "f.json: expected a JSON object (a test object), got a number (3)"),
    ],
)
def test_json_object_refuses_in_one_line_with_the_callers_error(text: str, message: str) -> None:
    with pytest.raises(Refused) as caught:
        json_object(text, "f.json", "a test file", limit=4, error=Refused, object_is="a test object")
    assert str(caught.value) == message


def test_json_object_reads_an_object_at_the_depth_limit() -> None:
    assert json_object('{"a": {"b": ["[[[["]}}', "f.json", "a test file", limit=3) == {"a": {"b": ["[[[["]}}


def test_json_depth_ignores_brackets_in_strings_and_stops_past_the_limit() -> None:
    assert json_depth('{"x": "[[[{{{"}', 10) == 1
    assert json_depth("[" * 1000, 5) == 6


@pytest.mark.parametrize(
    ("value", "name"), [({}, "an object"), ([], "an array"), ("", "a string"), (True, "a boolean"), (None, "null"),
                        (1.5, "a number (1.5)")],
)  # fmt: skip
def test_json_type_names_each_kind(value: object, name: str) -> None:
    assert json_type(value) == name
