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


def test_the_containers_copies_write_the_same_text():
    """The serving and training containers cannot import the plugin: they carry copies."""
    import importlib.util

    from mlops.core.paths import INCLUDE_DIR

    cases = [[], ["a", "b"], [f"column_{i}" for i in range(5_000)], ["x" * 10_000, "y"], [1, None, "z"]]
    for relative in ("serving/mlops_serving/messages.py", "training/mlops_train/messages.py"):
        spec = importlib.util.spec_from_file_location(f"copy_of_messages_{len(relative)}", INCLUDE_DIR / relative)
        copy = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(copy)
        assert [copy.name_list(names) for names in cases] == [name_list(names) for names in cases], relative
        assert copy.name_list(cases[2], limit=2) == name_list(cases[2], limit=2)


def test_the_handlers_and_the_training_entry_point_bound_their_column_lists():
    """A request to a model of 5,000 features, or training rows lacking 5,000 columns, get an
    error of a few hundred characters that still names the first columns and the count."""
    import pandas as pd
    import pytest

    from mlops.core.entrypoints import inference_module, training_module

    columns = [f"feature_{i}" for i in range(5_000)]
    with pytest.raises(inference_module().RequestError) as refused:
        inference_module()._csv_records("1,2\n", columns)
    with pytest.raises(ValueError) as lacking:
        training_module().feature_frame(pd.DataFrame({"other": [1]}), {"feature_columns": columns, "target": "y"})

    for error in (refused, lacking):
        assert len(str(error.value)) < 500 and "'feature_0'" in str(error.value), str(error.value)[:200]
        assert "4,995 more (5,000 in all)" in str(error.value) or "4,996 more (5,001 in all)" in str(error.value)
