"""Presets and parameter validation: bad parameters fail before any work starts."""

from __future__ import annotations

import re

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


def test_set_values_are_read_by_the_declared_type():
    """YAML would read ``model=yes`` as True and ``model=1.0`` as a float: a string parameter keeps the
    text, booleans accept the usual spellings, optionals accept null, and a value of the wrong type
    is refused with the parameter, the value and the expected type."""
    assert parse_assignment("model=yes") == ("model", "yes")
    assert parse_assignment("corpus=1.0") == ("corpus", "1.0")
    assert parse_assignment("model=null") == ("model", "null")  # model is not optional
    for raw, want in (("true", True), ("Yes", True), ("on", True), ("1", True), ("false", False), ("no", False),
                      ("OFF", False), ("0", False)):
        assert parse_assignment(f"bf16_train={raw}") == ("bf16_train", want)
    assert parse_assignment("test_queries=None") == ("test_queries", None)
    assert parse_assignment("test_queries=~") == ("test_queries", None)
    assert parse_assignment("test_queries=300") == ("test_queries", 300)
    assert parse_assignment("epochs= 2 ") == ("epochs", 2)
    assert parse_assignment("lr=2") == ("lr", 2.0) and isinstance(parse_assignment("lr=2")[1], float)
    assert parse_assignment("oasis_judge_max=null") == ("oasis_judge_max", None)
    for bad, kind in (("epochs=2.5", "int"), ("epochs=two", "int"), ("lr=fast", "float"),
                      ("bf16_train=maybe", "bool"), ("test_queries=all", "int | None")):
        with pytest.raises(ParameterError, match=rf"'{bad.split('=')[0]}' must be of type {re.escape(kind)}, "
                                                 rf"got '{bad.split('=')[1]}' \(expected "):
            parse_assignment(bad)
    # an unknown name is left to resolve, which lists the allowed parameters
    name, value = parse_assignment("epoch=3")
    with pytest.raises(ParameterError, match="unknown parameter 'epoch'"):
        resolve("cpu", {name: value})


def test_list_parameters_are_tuples_however_they_are_given():
    """A list parameter is read once, into a tuple: from a comma-separated string (command line,
    presets), a YAML / papermill list, or a tuple; params.yaml round-trips it; a bad item is refused."""
    from workbench.config import parse_assignment, resolve

    assert resolve("cpu").select_subsets == ("all", "easy", "ambiguous", "hard", "ambiguous+hard", "random")
    assert resolve("smoke").select_subsets == ("all", "ambiguous+hard")
    name, value = parse_assignment("select_subsets=all, random")
    assert (name, value) == ("select_subsets", ("all", "random"))
    for given in ("all,random", ["all", "random"], ("all", "random")):
        assert resolve("cpu", {"select_subsets": given}).select_subsets == ("all", "random")
    assert resolve("cpu", {"compare_models": "a,b"}).compare_models == ("a", "b")
    assert resolve("cpu", {"compare_models": None}).compare_models is None
    with pytest.raises(ParameterError, match="select_subsets"):
        resolve("cpu", {"select_subsets": ["all", 3]})
    with pytest.raises(ParameterError, match="validity_kinds"):
        resolve("cpu", {"validity_kinds": ["random_swap", "flip"]})


def test_reads_of_a_chapter_are_recorded_and_copies_are_not():
    """What ``open_run`` writes to ``params_read/``: a read by the chapter (a property counts as the
    parameters it reads), never the config's own validation, a copy, a comparison, a hash or pickling."""
    import copy
    import dataclasses
    import pickle

    from workbench import config

    reads: list[str] = []
    previous = config.record_reads(reads.append)
    try:
        p = resolve("smoke", {"epochs": 3})
        assert reads == []
        q = dataclasses.replace(p, lr=1e-5)
        _ = (p == q, hash(p), repr(p), p.to_dict(), pickle.loads(pickle.dumps(p)), copy.deepcopy(p))
        assert reads == []
        assert p.epochs == 3 and p.test_seed == 42
        assert reads == ["epochs", "seed", "eval_seed"]
    finally:
        config.record_reads(previous)
    _ = p.lr
    assert reads == ["epochs", "seed", "eval_seed"]  # stopped


def test_sections_cover_every_parameter_once_and_chapters_name_real_ones():
    from dataclasses import fields

    from workbench.config import CHAPTER_READS, SECTIONS, Params, chapter_parameters

    names = [f.name for f in fields(Params)]
    assert [n for section in SECTIONS.values() for n in section] == names
    assert not set(SECTIONS) & set(names)  # a CHAPTER_READS entry is a section or a parameter, never both
    for chapter, entries in CHAPTER_READS.items():
        unknown = [e for e in entries if e not in SECTIONS and e not in names]
        assert not unknown, f"CHAPTER_READS[{chapter!r}] names no section or parameter: {unknown}"
    assert chapter_parameters("04") == chapter_parameters("04_training")
    assert chapter_parameters("04")["select"] == SECTIONS["select"]
    with pytest.raises(ParameterError, match="unknown chapter '09'.*04_training"):
        chapter_parameters("09")
