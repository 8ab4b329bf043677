"""The sample-data generators: schemas, determinism, realistic values and a learnable signal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from include.data import generate

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "include" / "data" / "generate.py"
GENERATORS = [generate.churn, generate.retail]


@pytest.fixture(scope="module")
def churn_frame() -> pd.DataFrame:
    return generate.churn()


@pytest.fixture(scope="module")
def retail_frame() -> pd.DataFrame:
    return generate.retail()


def churned(frame: pd.DataFrame) -> pd.Series:
    return frame["Churn?"] == "True."


def cancelled(frame: pd.DataFrame) -> pd.Series:
    return frame["Invoice"].str.startswith("C")


# --- both generators -------------------------------------------------------------------------


def test_churn_has_the_seed_columns_in_order(churn_frame):
    assert list(churn_frame.columns) == [
        "State", "Account Length", "Area Code", "Phone", "Int'l Plan", "VMail Plan", "VMail Message",
        "Day Mins", "Day Calls", "Day Charge", "Eve Mins", "Eve Calls", "Eve Charge",
        "Night Mins", "Night Calls", "Night Charge", "Intl Mins", "Intl Calls", "Intl Charge",
        "CustServ Calls", "Churn?",
    ]  # fmt: skip


def test_retail_has_the_online_retail_columns_in_order(retail_frame):
    assert list(retail_frame.columns) == [
        "Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country",
    ]  # fmt: skip


@pytest.mark.parametrize("generator", GENERATORS, ids=lambda g: g.__name__)
def test_same_seed_gives_an_identical_frame(generator):
    pd.testing.assert_frame_equal(generator(2000, seed=3), generator(2000, seed=3))


@pytest.mark.parametrize("generator", GENERATORS, ids=lambda g: g.__name__)
def test_another_seed_gives_a_different_frame(generator):
    assert not generator(2000, seed=3).equals(generator(2000, seed=4))


@pytest.mark.parametrize("generator", GENERATORS, ids=lambda g: g.__name__)
@pytest.mark.parametrize("n_rows", [1, 7, 1234, np.int64(50)])
def test_frame_has_exactly_n_rows(generator, n_rows):
    assert len(generator(n_rows)) == n_rows


def test_default_sizes_are_5000_churn_and_20000_retail_rows(churn_frame, retail_frame):
    assert (len(churn_frame), len(retail_frame)) == (5000, 20000)


@pytest.mark.parametrize("generator", GENERATORS, ids=lambda g: g.__name__)
@pytest.mark.parametrize("bad", [0, -5, 2.5, "100", None, True])
def test_bad_n_rows_raises_naming_the_parameter(generator, bad):
    with pytest.raises(ValueError, match="n_rows"):
        generator(bad)


def test_churn_refuses_more_rows_than_unique_phone_numbers():
    with pytest.raises(ValueError, match="n_rows.*10,000,000"):
        generate.churn(10**7 + 1)


# --- churn -----------------------------------------------------------------------------------


def test_phones_are_unique_and_look_like_the_seed(churn_frame):
    assert churn_frame["Phone"].is_unique
    assert churn_frame["Phone"].str.fullmatch(r"\d{3}-\d{4}").all()


def test_categorical_columns_take_the_seed_values(churn_frame):
    assert set(churn_frame["State"]) <= set(generate.US_STATES)
    assert churn_frame["State"].nunique() > 40
    assert set(churn_frame["Area Code"]) == {408, 415, 510}
    assert set(churn_frame["Int'l Plan"]) == set(churn_frame["VMail Plan"]) == {"yes", "no"}
    assert set(churn_frame["Churn?"]) == {"True.", "False."}


def test_numeric_columns_stay_in_the_classic_ranges(churn_frame):
    assert churn_frame["Account Length"].between(1, 243).all()
    assert churn_frame["CustServ Calls"].between(0, 9).all()
    for period, (mean_mins, _, max_mins, *_) in generate.USAGE.items():
        minutes = churn_frame[f"{period} Mins"]
        assert minutes.between(0, max_mins).all()
        assert minutes.mean() == pytest.approx(mean_mins, rel=0.05)
    assert churn_frame["Intl Mins"].between(0, 20).all()


def test_voicemail_messages_only_with_a_voicemail_plan(churn_frame):
    without_plan = churn_frame["VMail Plan"] == "no"
    assert (churn_frame.loc[without_plan, "VMail Message"] == 0).all()
    assert (churn_frame.loc[~without_plan, "VMail Message"] > 0).all()


@pytest.mark.parametrize("period, rate", [("Day", 0.17), ("Eve", 0.085), ("Night", 0.045), ("Intl", 0.27)])
def test_charges_are_minutes_times_the_rate(churn_frame, period, rate):
    expected = (churn_frame[f"{period} Mins"] * rate).round(2)
    np.testing.assert_allclose(churn_frame[f"{period} Charge"], expected, atol=0.005)


def test_about_fourteen_percent_churn(churn_frame):
    assert 0.11 <= churned(churn_frame).mean() <= 0.18


def test_many_customer_service_calls_mean_much_more_churn(churn_frame):
    label, many_calls = churned(churn_frame), churn_frame["CustServ Calls"] >= 4
    assert label[many_calls].mean() > 2.5 * label[~many_calls].mean()


def test_international_plan_and_no_voicemail_raise_churn(churn_frame):
    label = churned(churn_frame)
    intl_plan, vmail_plan = churn_frame["Int'l Plan"] == "yes", churn_frame["VMail Plan"] == "yes"
    assert label[intl_plan].mean() > 2 * label[~intl_plan].mean()
    assert label[~vmail_plan].mean() > label[vmail_plan].mean()


# --- retail ----------------------------------------------------------------------------------


def test_retail_column_types_match_the_real_file(retail_frame):
    assert pd.api.types.is_datetime64_any_dtype(retail_frame["InvoiceDate"])
    assert retail_frame["Customer ID"].dtype == np.float64
    assert retail_frame["Quantity"].dtype == np.int64


def test_invoices_have_several_lines_with_one_date_customer_and_country(retail_frame):
    per_invoice = retail_frame.groupby("Invoice")
    assert per_invoice.size().mean() > 3
    assert (per_invoice[["InvoiceDate", "Country"]].nunique() == 1).all().all()
    assert (per_invoice["Customer ID"].nunique(dropna=False) == 1).all()


def test_cancelled_invoices_start_with_c_and_have_negative_quantities(retail_frame):
    is_cancelled = cancelled(retail_frame)
    assert (retail_frame.loc[is_cancelled, "Quantity"] < 0).all()
    assert (retail_frame.loc[~is_cancelled, "Quantity"] > 0).all()
    assert retail_frame.loc[~is_cancelled, "Invoice"].str.fullmatch(r"\d{6}").all()


def test_about_two_percent_of_invoices_are_cancelled(retail_frame):
    invoices = retail_frame["Invoice"].drop_duplicates()
    assert 0.01 <= invoices.str.startswith("C").mean() <= 0.035


def test_about_a_fifth_of_lines_have_no_customer(retail_frame):
    assert 0.15 <= retail_frame["Customer ID"].isna().mean() <= 0.25
    known = retail_frame["Customer ID"].dropna()
    assert (known == known.round()).all() and known.min() >= generate.FIRST_CUSTOMER_ID


def test_invoice_dates_lie_in_the_real_files_period(retail_frame):
    dates = retail_frame["InvoiceDate"]
    assert dates.min() >= pd.Timestamp("2009-12-01")
    assert dates.max() < pd.Timestamp("2011-12-10")
    assert dates.is_monotonic_increasing


def test_prices_are_positive_with_two_decimals(retail_frame):
    prices = retail_frame["Price"]
    assert (prices > 0).all()
    np.testing.assert_allclose(prices, prices.round(2), atol=1e-9)


def test_products_come_from_a_fixed_catalogue_of_a_few_hundred(retail_frame):
    assert 100 <= retail_frame["StockCode"].nunique() <= 300
    assert (retail_frame.groupby("StockCode")["Description"].nunique() == 1).all()
    products = set(zip(retail_frame["StockCode"], retail_frame["Description"]))
    other_seed = generate.retail(2000, seed=99)
    assert set(zip(other_seed["StockCode"], other_seed["Description"])) <= products


def test_country_is_mostly_united_kingdom_with_about_a_dozen_others(retail_frame):
    shares = retail_frame["Country"].value_counts(normalize=True)
    assert shares.index[0] == "United Kingdom" and shares.iloc[0] > 0.8
    assert 8 <= len(shares) - 1 <= 15


def test_customers_differ_in_recency_frequency_and_monetary_value(retail_frame):
    sales = retail_frame[~cancelled(retail_frame) & retail_frame["Customer ID"].notna()]
    sales = sales.assign(amount=sales["Quantity"] * sales["Price"])
    rfm = sales.groupby("Customer ID").agg(
        last=("InvoiceDate", "max"), frequency=("Invoice", "nunique"), monetary=("amount", "sum")
    )
    recency_days = (retail_frame["InvoiceDate"].max() - rfm["last"]).dt.days
    assert (recency_days > 365).mean() > 0.1  # some stopped buying long ago
    assert (recency_days < 90).mean() > 0.2  # many are still active
    assert rfm["frequency"].quantile(0.9) >= 2.5 * rfm["frequency"].median()
    assert rfm["monetary"].quantile(0.9) >= 4 * rfm["monetary"].median()


# --- CSV and command line --------------------------------------------------------------------


def test_write_csv_writes_a_header_and_no_index(tmp_path, retail_frame):
    path = generate.write_csv(retail_frame.head(50), tmp_path / "nested" / "retail.csv")
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(generate.RETAIL_COLUMNS)
    back = pd.read_csv(path, parse_dates=["InvoiceDate"], dtype={"Invoice": str, "StockCode": str})
    pd.testing.assert_frame_equal(back, retail_frame.head(50), check_dtype=False)


def test_cli_writes_a_readable_csv_and_reports_path_and_rows(tmp_path):
    out = tmp_path / "churn.csv"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "churn", "--rows", "321", "--seed", "5", "--out", str(out)],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    assert str(out) in result.stdout and "321" in result.stdout
    frame = pd.read_csv(out)
    assert list(frame.columns) == list(generate.CHURN_COLUMNS) and len(frame) == 321


def test_cli_main_writes_the_retail_dataset(tmp_path, capsys):
    out = tmp_path / "retail.csv"
    assert generate.main(["retail", "--rows", "500", "--seed", "5", "--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out), "500"]
    frame = pd.read_csv(out)
    assert list(frame.columns) == list(generate.RETAIL_COLUMNS) and len(frame) == 500


def test_cli_rejects_a_bad_row_count_naming_it(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        generate.main(["churn", "--rows", "0", "--out", str(tmp_path / "x.csv")])
    assert exit_info.value.code != 0 and "n_rows" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()
