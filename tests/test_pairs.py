"""The one check of a pairs table (``workbench.pairs.check_pairs``) that training, ChatDANCE, QRA,
the cross-encoder and the web queries all run."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.errors import ParameterError
from workbench.pairs import check_pairs


def _pairs(**cols):
    return pd.DataFrame({"id": ["a", "b"], "query": ["sort a list", "read a file"], "code": ["def f(): pass", "def g(): pass"], **cols})


def test_a_good_table_comes_back_reindexed():
    df = _pairs().set_axis([7, 9])
    assert check_pairs(df).index.tolist() == [0, 1]


@pytest.mark.parametrize("bad, kwargs, message", [
    ([("x", 1)], {}, "pairs: expected a pandas DataFrame with columns ['id', 'query', 'code'], got list"),
    (_pairs().drop(columns=["code"]), {}, "pairs: missing column(s) ['code']"),
    (_pairs().iloc[:0], {}, "pairs: no pairs (empty DataFrame)"),
    (_pairs(query=["ok", 3]), {}, "pairs: column 'query' has non-text values at rows [1]"),
    (_pairs(code=["  ", "def g(): pass"]), {"blank_text": False}, "column 'code' has empty or non-text values at rows [0]"),
    (_pairs(id=["a", "a"]), {"what": "train"}, "train: id 'a' appears more than once"),
    (_pairs(id=[1, "1"]), {}, "id '1' appears more than once"),  # compared as strings: the dynamics are keyed by str(id)
])
def test_each_fault_is_named(bad, kwargs, message):
    with pytest.raises(ParameterError) as e:
        check_pairs(bad, **kwargs)
    assert message in str(e.value)


def test_checks_can_be_relaxed_where_a_method_allows_it():
    assert len(check_pairs(_pairs().iloc[:0], min_rows=0)) == 0
    assert len(check_pairs(_pairs(id=["a", "a"]), unique_ids=False)) == 2
    assert len(check_pairs(_pairs(code=["", ""]))) == 2  # blank text is allowed unless blank_text=False
