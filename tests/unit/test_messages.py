"""Bounded name lists for error messages."""

from __future__ import annotations

from mlops.core.messages import MAX_NAME_CHARS, name_list


def test_a_few_names_are_listed_as_they_are():
    assert name_list(["a", "b"]) == "['a', 'b']"
    assert name_list([]) == "[]"


def test_many_names_give_the_first_few_and_the_count():
    text = name_list([f"column_{i}" for i in range(5_000)])

    assert text == "['column_0', 'column_1', 'column_2', 'column_3', 'column_4'] and 4,995 more (5,000 in all)"


def test_a_very_long_name_is_cut_short():
    text = name_list(["x" * 10_000, "y"])

    assert len(text) < 2 * MAX_NAME_CHARS
    assert text.endswith("..., 'y']")
