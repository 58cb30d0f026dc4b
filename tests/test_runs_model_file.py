"""Crafted model.json files: every field, type, size and nesting depth mutated. Each load ends in a
ValueError (or FileNotFoundError) that names the file and the field, or in a valid model; never a
raw TypeError/RuntimeError/RecursionError/AttributeError/KeyError, and never an allocation the
weights file does not justify (peak memory measured in a separate process)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import genvae as gv
from tests.helpers import SAFETY_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
NEST = "__nested__"  # a placeholder replaced by deeply nested brackets in the JSON text

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1, 3, 10**8, 10**12, 2**31, 2**63, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["models/vae", "models/cvae", "encoders/mlp", "decoders/conv", "losses/bce", "nope/x",
                     "models", "", "conditioners/film", "likelihoods/gaussian", "float64", "../weights.pt"]),
    st.lists(st.integers(-3, 10**9), max_size=4),
    st.dictionaries(st.text(max_size=6), st.integers(-3, 10**9), max_size=3),
    st.integers(2, 200_000).map(lambda depth: f"{NEST}{depth}"),
)  # fmt: skip


def all_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path to every value in a JSON document (the root's fields, and down)."""
    found = [prefix] if prefix else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        found += all_paths(child, (*prefix, key))
    return found


def mutate(document: dict[str, Any], data: st.DataObject) -> str:
    """The JSON text of ``document`` with one field replaced, removed or added (drawn by ``data``)."""
    document = json.loads(json.dumps(document))
    path = data.draw(st.sampled_from(all_paths(document)), label="path")
    *parents, last = path
    node = document
    for key in parents:
        node = node[key]
    action = data.draw(st.sampled_from(["replace", "remove", "add"]), label="action")
    if action == "replace":
        node[last] = data.draw(values, label="value")
    elif action == "remove":
        del node[last]
    elif isinstance(node, dict):
        node[data.draw(st.text(max_size=8), label="new key")] = data.draw(values, label="value")
    else:
        node.insert(last, data.draw(values, label="value"))
    text = json.dumps(document)
    while NEST in text:  # deeply nested lists, written as text (json.dumps would recurse)
        start = text.index(f'"{NEST}')
        end = text.index('"', start + 1)
        depth = int(text[start + 1 + len(NEST) : end])
        text = text[:start] + "[" * depth + "]" * depth + text[end + 1 :]
    return text


def saved_model(folder: Path) -> Path:
    torch.manual_seed(0)
    gv.save(gv.presets.seed_cvae(), folder)
    return folder


def write_case(saved: Path, folder: Path, text: str) -> Path:
    """A model folder holding ``text`` as model.json beside the saved weights."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for weights in saved.glob("weights-*.safetensors"):
        os.link(weights, folder / weights.name)
    (folder / "model.json").write_text(text)
    return folder


def check_load(saved: Path, folder: Path, text: str) -> str:
    """Load ``text`` as model.json beside the saved weights; "error" or "model" (asserted valid)."""
    write_case(saved, folder, text)
    try:
        model = gv.load(folder)
    except (ValueError, FileNotFoundError) as err:
        message = str(err)
        assert "\n" not in message, message
        weights = (str(p) for p in folder.glob("weights-*.safetensors"))
        named = (str(folder / "model.json"), *weights, "directory: expected")
        assert message.startswith(named), message
        assert not isinstance(err, KeyError | TypeError | AttributeError | RuntimeError | RecursionError)
        return "error"
    saved_state = gv.load(saved).state_dict()
    state = model.state_dict()
    assert state.keys() == saved_state.keys()
    assert all(torch.equal(state[k], saved_state[k]) for k in state)  # the weights the file holds, no others
    return "model"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return saved_model(tmp_path_factory.mktemp("saved"))


OUTCOMES: dict[str, int] = {"error": 0, "model": 0}


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture], max_examples=150)
@given(st.data())
def test_a_mutated_model_description_loads_as_a_valid_model_or_fails_clearly(
    saved: Path, tmp_path: Path, data: st.DataObject
) -> None:
    document = json.loads((saved / "model.json").read_text())
    OUTCOMES[check_load(saved, tmp_path / "case", mutate(document, data))] += 1


def with_field(saved: Path, path: tuple[Any, ...], value: Any) -> str:
    document = json.loads((saved / "model.json").read_text())
    node = document
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return json.dumps(document)


ENCODER = ("model", "args", "encoder", "args")


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("format",), 999, "model.json: format: expected 1, 2 or 3 (the versions this genvae reads), got 999"),
        (("dtype",), "float64", "first.layer.weight: expected dtype float64 (the model in model.json), got float32"),
        (("dtype",), "int64", "model.json: dtype: expected one of float32, float64, float16, bfloat16, got 'int64'"),
        ((*ENCODER, "hidden"), [10**8], "encoder.rest.4.weight: expected shape (100000000, 3136) (the model in"),
        ((*ENCODER, "channels"), [10**8, 64], "encoder.first.layer.weight: expected shape (100000000, 1, 3, 3)"),
        (("model", "args", "latent_dim"), 10**12, "model: decoder: expected a decoder with latent_dim=1000000000000"),
        (("model", "genvae"), "losses/bce", "model.genvae: expected a registered model part, got 'losses/bce'"),
        (("model", "genvae"), 3, "cannot rebuild the model it describes: model.genvae: expected 'kind/name', got 3"),
        (("model", "args"), [], "model.args: expected an object, got an array"),
        (("weights",), "../weights.pt", "model.json: weights: expected 'weights-<16 hex digits>.safetensors', got"),
        ((*ENCODER, "conditioner"), {"genvae": "conditioners/nope"}, "conditioners: unknown name 'nope'"),
    ],
)  # fmt: skip
def test_named_crafted_descriptions_fail_clearly(
    saved: Path, tmp_path: Path, path: tuple[Any, ...], value: Any, message: str
) -> None:
    folder = write_case(saved, tmp_path / "case", with_field(saved, path, value))
    with pytest.raises(ValueError) as info:
        gv.load(folder)
    assert message in str(info.value) and str(info.value).startswith(str(folder)), str(info.value)


@example(depth=33)
@given(st.integers(33, 500_000))  # up to 1 MB of brackets, the largest description read
def test_deep_nesting_is_refused_before_parsing(tmp_path_factory: pytest.TempPathFactory, depth: int) -> None:
    folder = tmp_path_factory.mktemp("deep")
    (folder / "model.json").write_text('{"format": 2, "model": ' + "[" * depth + "]" * depth + "}")
    with pytest.raises(ValueError, match=r"model.json: expected JSON nested at most 32 levels deep, got deeper"):
        gv.load(folder)


def test_an_oversized_description_is_refused_unread(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text(" " * (gv.config.MAX_MODEL_FILE_BYTES + 1))
    with pytest.raises(ValueError, match=r"model.json: expected a model description of at most 1048576 bytes, got"):
        gv.load(tmp_path)


# -- peak memory, in a process of its own ---------------------------------------------------------------


def run_examples(count: int, folder: str) -> None:
    """Load ``count`` mutated descriptions in this process and print the outcomes and the peak RSS
    before and after (called in a subprocess by the test below)."""
    base = Path(folder)
    saved = saved_model(base / "saved")
    check_load(saved, base / "case", (saved / "model.json").read_text())  # the valid one: the baseline
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    document = json.loads((saved / "model.json").read_text())
    outcomes = {"error": 0, "model": 0}

    @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    @example(None).via("a layer 10^5 wide: 1.25 GB that a load building before checking would fill")
    def load_one(data: st.DataObject | None) -> None:
        text = mutate(document, data) if data is not None else with_field(saved, (*ENCODER, "hidden"), [10**5])
        outcomes[check_load(saved, base / "case", text)] += 1

    load_one()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kb": before, "after_kb": after, **outcomes}))


def test_mutated_descriptions_allocate_nothing_they_do_not_hold(tmp_path: Path) -> None:
    """One process loads the valid model, then 150 mutated descriptions (among them a layer 10^5
    wide, whose weights would take 1.25 GB): its peak memory may not grow by more than 100 MB."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT)]))}
    code = f"from tests.test_runs_model_file import run_examples; run_examples(150, {str(tmp_path)!r})"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=SAFETY_TIMEOUT
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["error"] + result["model"] >= 150
    assert (result["after_kb"] - result["before_kb"]) / 1024 < 100, result
