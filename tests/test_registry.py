"""Laws of the generic registry."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

import genvae as gv
from genvae.registry import Registry, UnknownNameError

_counter = itertools.count()
names_st = st.lists(st.text("abcdefgh_", min_size=1, max_size=8), min_size=1, max_size=6, unique=True)


def fresh() -> Registry[object]:
    return Registry(f"test_things_{next(_counter)}")


@given(names_st)
def test_get_returns_what_was_registered(names: list[str]) -> None:
    reg = fresh()
    objects = {n: object() for n in names}
    for n, obj in objects.items():
        reg.register(n, obj)
    assert all(reg.get(n) is obj for n, obj in objects.items())
    assert reg.names() == sorted(names)
    assert len(reg) == len(names)


@given(names_st)
def test_a_duplicate_name_is_an_error_and_keeps_the_first(names: list[str]) -> None:
    reg = fresh()
    first = object()
    reg.register(names[0], first)
    with pytest.raises(ValueError, match=f"the name '{names[0]}' is taken"):
        reg.register(names[0], object())
    assert reg.get(names[0]) is first


@given(names_st, st.text("xyz", min_size=1, max_size=4))
def test_an_unknown_name_lists_the_known_ones(names: list[str], missing: str) -> None:
    reg = fresh()
    for n in names:
        reg.register(n, object())
    with pytest.raises(UnknownNameError) as info:
        reg.get(missing)
    assert isinstance(info.value, KeyError)
    assert str(info.value) == f"{reg.kind}: unknown name '{missing}'; known names: {', '.join(sorted(names))}"


def test_override_replaces_and_unregister_removes() -> None:
    reg = fresh()
    reg.register("a", 1)
    reg.register("a", 2, override=True)
    assert reg.get("a") == 2
    assert reg.unregister("a") == 2
    assert "a" not in reg


def test_decorator_form_returns_the_object() -> None:
    reg = fresh()

    @reg.register("f")
    def f() -> int:
        return 1

    assert reg.get("f") is f


def test_names_filter_with_a_pattern() -> None:
    assert gv.losses.names("kl*") == ["kl", "kl_mc"]


def test_resolve_accepts_a_name_or_an_object() -> None:
    split = gv.conditioners.SplitConditioner()
    assert gv.conditioners.registry.resolve(split, argument="conditioner") is split
    assert isinstance(
        gv.conditioners.registry.resolve("split", argument="conditioner"), gv.conditioners.SplitConditioner
    )
    with pytest.raises(
        KeyError, match="conditioner: conditioners: unknown name 'splt'; known names: concat, film, split"
    ):
        gv.conditioners.registry.resolve("splt", argument="conditioner")


def test_builtin_registries_hold_the_documented_names() -> None:
    assert gv.encoders.names() == ["conv", "mlp"]
    assert gv.decoders.names() == ["conv", "mlp"]
    assert gv.conditioners.names() == ["concat", "film", "split"]
    assert gv.likelihoods.names() == ["bernoulli", "continuous_bernoulli", "gaussian"]
    assert set(gv.losses.names()) >= {"bce", "mse", "kl", "kl_mc", "nll"}


def test_an_empty_name_is_refused() -> None:
    with pytest.raises(ValueError, match="name: expected a non-empty string"):
        fresh().register("", 1)
