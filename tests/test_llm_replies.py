"""Reading chat answers (``workbench.llm.replies``), shared by ChatDANCE, OASIS and the web queries."""

from __future__ import annotations

from workbench.llm.replies import TRIPLE_QUOTES, looks_like_code, norm_words, strip_quotes


def test_strip_quotes_peels_nested_pairs_and_keeps_inner_quotes():
    assert strip_quotes('  "**sort a list**"  ') == "sort a list"
    assert strip_quotes("\u201cparse 'json' file\u201d") == "parse 'json' file"
    assert strip_quotes('"') == '"' and strip_quotes('""') == '""'  # nothing inside: left alone
    assert strip_quotes('"""Return the sum."""', TRIPLE_QUOTES) == "Return the sum."


def test_norm_words_ignores_case_spacing_and_punctuation():
    assert norm_words("Sort a List!") == norm_words("  sort, a   list ") == "sort a list"
    assert norm_words("") == ""


def test_looks_like_code_tells_statements_from_prose():
    assert looks_like_code("np.linalg.norm(x)") and looks_like_code("def f():\n    return 1")
    assert looks_like_code("```\nanything\n```") and looks_like_code("import os")
    assert not looks_like_code("norm of a vector") and not looks_like_code("how to sort a dict by value")
    assert not looks_like_code("(" * 5000 + ")" * 5000)  # too deep for ast: prose as far as we can tell, no crash
