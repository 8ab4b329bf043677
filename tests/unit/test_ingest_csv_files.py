"""The strict reader for landed CSV files: clean files load, bad ones fail naming the problem."""

from __future__ import annotations

import io

import pytest

from mlops.ingest.csv_files import landed_csv_to_table, load_csv_strict

GOOD_CSV = "a,b,c\n1,x,2.5\n2,y,3.5\n"


def test_load_csv_strict_reads_a_clean_file(tmp_path):
    path = tmp_path / "good.csv"
    path.write_text(GOOD_CSV, encoding="utf-8")

    frame = load_csv_strict(path, ["a", "b", "c"])

    assert list(frame.columns) == ["a", "b", "c"] and len(frame) == 2
    assert frame["a"].tolist() == [1, 2]


def test_load_csv_strict_accepts_a_utf8_bom_and_binary_buffers():
    frame = load_csv_strict(io.BytesIO(b"\xef\xbb\xbf" + GOOD_CSV.encode()), ["a", "b", "c"])
    assert list(frame.columns) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\n\n", "empty"),
        (b"a,b,c\n", "header only"),
        (b"a;b;c\n1;2;3\n", "wrong delimiter.*semicolon"),
        (b"a\tb\tc\n1\t2\t3\n", "wrong delimiter.*tab"),
        (b"a,b,c\n1,2,3\n4,5\n7,8,9\n", "ragged rows: line 3 has 2 fields where the header has 3"),
        (b"a,b,c\n1,2,3\n4,5,6,7\n", "ragged rows: line 3 has 4 fields"),
        (b"a,b,c\n1,2,3\n4,5", "truncated file: the last row \\(line 3\\) ends after 2 of 3 fields"),
        (b'a,b,c\n1,2,3\n4,"fi', "truncated file: the last row \\(line 3\\) ends inside an unclosed quote"),
        (b"a|b|c\n1|2|3\n", "wrong delimiter.*pipe"),
        (b"a,b,c\n1,caf\xe9,3\n", "not UTF-8: byte 0xe9 at line 2"),
        (b"a,b,b\n1,2,3\n", "duplicate column names.*'b'"),
        (b"a,b,d\n1,2,3\n", r"columns do not match the schema: missing \['c'\]; unexpected \['d'\]"),
    ],
    ids=[
        "empty",
        "blank-lines",
        "header-only",
        "semicolon",
        "tab",
        "short-row",
        "long-row",
        "truncated-row",
        "truncated-quote",
        "pipe",
        "latin-1",
        "duplicate-header",
        "wrong-columns",
    ],
)
def test_load_csv_strict_rejects_bad_files_with_a_clear_message(tmp_path, content, message):
    path = tmp_path / "landed.csv"
    path.write_bytes(content)

    with pytest.raises(ValueError, match=message) as caught:
        load_csv_strict(path, ["a", "b", "c"])

    assert str(path) in str(caught.value)


def test_load_csv_strict_keeps_quoted_commas_in_one_field():
    frame = load_csv_strict(io.BytesIO(b'a,b,c\n1,"x, y",3\n'), ["a", "b", "c"])
    assert frame.loc[0, "b"] == "x, y"


def test_load_csv_strict_accepts_extra_columns_with_a_warning_when_told_to(caplog):
    content = b"a,b,c,notes\n1,2,3,vip\n"
    with pytest.raises(ValueError, match=r"unexpected \['notes'\]"):
        load_csv_strict(io.BytesIO(content), ["a", "b", "c"])

    with caplog.at_level("WARNING", logger="mlops.ingest.csv_files"):
        frame = load_csv_strict(io.BytesIO(content), ["a", "b", "c"], extra_columns="warn")

    assert list(frame.columns) == ["a", "b", "c", "notes"]
    assert "unexpected columns ['notes'] accepted" in caplog.text


def test_load_csv_strict_still_fails_a_missing_column_when_extras_are_allowed():
    with pytest.raises(ValueError, match=r"missing \['c'\]"):
        load_csv_strict(io.BytesIO(b"a,b,x\n1,2,3\n"), ["a", "b", "c"], extra_columns="warn")


def test_a_parquet_file_named_csv_is_named_as_parquet_not_as_bad_utf8(tmp_path):
    import pandas as pd

    path = tmp_path / "customers.csv"
    pd.DataFrame({"a": [1, 2], "b": ["x", "y"], "c": [2.5, 3.5]}).to_parquet(path)

    with pytest.raises(ValueError, match=r"not a CSV file: this is a Parquet file") as caught:
        load_csv_strict(path, ["a", "b", "c"])

    assert str(path) in str(caught.value)
    assert "not UTF-8" not in str(caught.value)


@pytest.mark.parametrize(
    ("encode", "what"),
    [
        (lambda text: __import__("gzip").compress(text.encode()), "a gzip-compressed file"),
        (lambda text: _zipped(text), r"a ZIP archive \(an Excel .xlsx workbook is one\)"),
        (lambda text: text.encode("utf-16"), r"UTF-16 text"),
    ],
    ids=["gzip", "zip", "utf-16"],
)
def test_other_formats_under_a_csv_name_are_named(encode, what):
    with pytest.raises(ValueError, match=f"not a CSV file: this is {what}"):
        load_csv_strict(encode(GOOD_CSV), ["a", "b", "c"])


def _zipped(text: str) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("good.csv", text)
    return buffer.getvalue()


def test_thousands_of_unexpected_columns_give_a_bounded_message_with_their_count(caplog):
    header = ["a", "b", "c", *(f"extra_column_{i}" for i in range(5_000))]
    content = (",".join(header) + "\n" + ",".join(["1"] * len(header)) + "\n").encode()

    with pytest.raises(ValueError, match=r"unexpected \['extra_column_0', .* and 4,995 more \(5,000 in all\)") as caught:
        load_csv_strict(io.BytesIO(content), ["a", "b", "c", "d"])
    with caplog.at_level("WARNING", logger="mlops.ingest.csv_files"):
        load_csv_strict(io.BytesIO(content), ["a", "b", "c"], extra_columns="warn")

    assert len(str(caught.value)) < 500
    assert "missing ['d']" in str(caught.value)
    assert "5,000 in all" in caplog.text and len(caplog.text) < 500


def test_a_header_only_file_with_thousands_of_columns_gives_a_bounded_message():
    header = ",".join(f"c{i}" for i in range(5_000)) + "\n"

    with pytest.raises(ValueError, match=r"header only, no data rows .*5,000 in all") as caught:
        load_csv_strict(header.encode(), None)

    assert len(str(caught.value)) < 500


def test_an_extra_column_is_kept_for_the_gate_when_the_policy_warns():
    from mlops.core.config import load_pipeline

    schema = load_pipeline("retail").schema
    header = ",".join(schema["columns"] + ["Channel"])
    row = "489434,85048,LIGHT,12,2010-12-01 08:26:00,6.95,13085.0,United Kingdom,web"
    table = landed_csv_to_table(f"{header}\n{row}\n".encode(), schema, "retail.csv", extra_columns="warn")
    assert table.column_names == [*schema["columns"], "Channel"]
    with pytest.raises(ValueError, match="unexpected"):
        landed_csv_to_table(f"{header}\n{row}\n".encode(), schema, "retail.csv", extra_columns="fail")
