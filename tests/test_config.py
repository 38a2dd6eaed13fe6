"""Presets and parameter validation: bad parameters fail before any work starts."""

from __future__ import annotations

import pytest

from workbench.config import PRESETS, parse_assignment, resolve
from workbench.errors import ParameterError


def test_presets_resolve():
    for name in PRESETS:
        assert resolve(name).preset == name
    assert resolve("smoke").corpus == "smoke"
    assert resolve("cpu", {"epochs": 3}).epochs == 3


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"epochz": 2}, "unknown parameter 'epochz'"),
        ({"epochs": "2"}, "must be of type int"),
        ({"lr": True}, "must be of type float"),
        ({"dynamics_mode": "sometimes"}, "must be one of"),
        ({"batch_size": 0}, "must be >= 1"),
    ],
)
def test_bad_parameters_are_refused(overrides, fragment):
    with pytest.raises(ParameterError, match=fragment):
        resolve("cpu", overrides)


def test_unknown_parameter_lists_the_allowed_ones():
    with pytest.raises(ParameterError) as e:
        resolve("cpu", {"nope": 1})
    assert "epochs (int)" in str(e.value) and "test_queries (int | None)" in str(e.value)


def test_unknown_preset():
    with pytest.raises(ParameterError, match="unknown preset"):
        resolve("tpu")


def test_ints_for_floats_and_none_for_optionals():
    p = resolve("cpu", {"lr": 1, "test_queries": None})
    assert isinstance(p.lr, float) and p.test_queries is None


def test_parse_assignment():
    assert parse_assignment("epochs=3") == ("epochs", 3)
    assert parse_assignment("lr=3e-5") == ("lr", 3e-5)
    assert parse_assignment("test_queries=null") == ("test_queries", None)
    assert parse_assignment("model=mpnet") == ("model", "mpnet")
    with pytest.raises(ParameterError):
        parse_assignment("epochs")
