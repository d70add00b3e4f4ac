"""The name registry: lazy lookups, extras kept out of "all", one suggestion format."""

from __future__ import annotations

import pytest

from bench.core.errors import ConfigError
from bench.core.registry import GENERATORS, NULL_GENERATOR, REFERENCE_GENERATOR, Registry


def test_unknown_names_get_a_suggestion_and_the_known_list():
    registry = Registry("widget", {"alpha": "json:dumps", "beta": "json:loads"})
    with pytest.raises(ConfigError, match=r"unknown widget 'alpah'; did you mean 'alpha'\? \(known: alpha, beta\)"):
        registry.get("alpah")
    with pytest.raises(ConfigError) as err:
        registry.get("zzz")
    assert "did you mean" not in str(err.value) and "known: alpha, beta" in str(err.value)


def test_targets_import_lazily_and_extras_stay_out_of_names():
    registry = Registry("widget", {"dumps": "json:dumps"}, extras={"loads": "json:loads"})
    assert registry.names() == ["dumps"] and "loads" in registry
    import json

    assert registry.get("loads") is json.loads
    with pytest.raises(ConfigError, match="cannot be imported"):
        Registry("widget", {"bad": "json:no_such_name"}).get("bad")


def test_the_null_and_reference_generators_are_registered_systems_under_test():
    assert {NULL_GENERATOR, REFERENCE_GENERATOR} <= set(GENERATORS.names())
