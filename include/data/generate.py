"""Deterministic sample data in the seeds' schemas: telecom churn and Online Retail II.

Both generators are vectorised numpy/pandas (no Python loop per row), so a million rows take
seconds, and the same ``seed`` always gives an identical frame. The data are synthetic but carry
the structure the pipelines look for:

* :func:`churn` follows the value ranges of the classic 21-column churn dataset. The label
  ``Churn?`` is drawn from a logistic function of customer-service calls, day-time usage, the
  international plan and the absence of a voice-mail plan, plus noise, so a gradient-boosting
  model learns it (held-out ROC AUC near 0.9) without it being trivial.
* :func:`retail` follows Online Retail II: several lines per invoice, invoices from customers
  in segments that differ in frequency, basket size and recency (so RFM segmentation finds
  structure), about 2% cancelled invoices ("C" prefix, negative quantities) and about 20% of
  lines without a customer.

Command line::

    python include/data/generate.py churn --rows 5000 --seed 7 --out churn.csv
    python include/data/generate.py retail --rows 20000 --seed 11 --out retail.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CHURN_COLUMNS = (
    "State", "Account Length", "Area Code", "Phone", "Int'l Plan", "VMail Plan", "VMail Message",
    "Day Mins", "Day Calls", "Day Charge", "Eve Mins", "Eve Calls", "Eve Charge",
    "Night Mins", "Night Calls", "Night Charge", "Intl Mins", "Intl Calls", "Intl Charge",
    "CustServ Calls", "Churn?",
)  # fmt: skip
RETAIL_COLUMNS = (
    "Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country",
)  # fmt: skip

# ---------------------------------------------------------------------------------------------
# Churn
# ---------------------------------------------------------------------------------------------

US_STATES = (
    "AK", "AL", "AR", "AZ", "CA", "CO", "CT", "DC", "DE", "FL", "GA", "HI", "IA", "ID", "IL",
    "IN", "KS", "KY", "LA", "MA", "MD", "ME", "MI", "MN", "MO", "MS", "MT", "NC", "ND", "NE",
    "NH", "NJ", "NM", "NV", "NY", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT",
    "VA", "VT", "WA", "WI", "WV", "WY",
)  # fmt: skip
AREA_CODES = (408, 415, 510)
AREA_CODE_SHARES = (0.25, 0.50, 0.25)
PHONE_NUMBERS = 10**7  # "ddd-dddd": seven digits, so at most this many unique phones
RATE_PER_MINUTE = {"Day": 0.17, "Eve": 0.085, "Night": 0.045, "Intl": 0.27}
# (mean minutes, sd minutes, max minutes, mean calls, sd calls, max calls), as in the classic data
USAGE = {
    "Day": (179.8, 54.5, 350.8, 100.4, 20.1, 165),
    "Eve": (201.0, 50.7, 363.7, 100.1, 19.9, 170),
    "Night": (200.9, 50.6, 395.0, 100.1, 19.6, 175),
}
INTL_PLAN_SHARE = 0.097
VMAIL_PLAN_SHARE = 0.277
# Logistic churn model. The intercept puts the churn rate near 14% for the distributions above.
CHURN_INTERCEPT = -5.8
CHURN_WEIGHTS = {"CustServ Calls": 1.0, "Day Mins": 0.035, "Int'l Plan": 2.4, "no VMail Plan": 1.0}
CHURN_NOISE_SD = 0.5


def churn(n_rows: int = 5000, seed: int = 7) -> pd.DataFrame:
    """Telecom customers in the seed's 21-column churn schema, one row per customer.

    :param n_rows: number of customers, at most ``PHONE_NUMBERS`` (10**7) since phones are unique.
    :param seed: seed of the random generator; the same seed gives an identical frame.
    :return: a frame with columns :data:`CHURN_COLUMNS`; ``Churn?`` is ``"True."`` or ``"False."``.
    """
    _check_rows(n_rows)
    if n_rows > PHONE_NUMBERS:
        raise ValueError(
            f"n_rows={n_rows} exceeds the limit of {PHONE_NUMBERS:,} rows (unique 7-digit phone numbers)"
        )
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {
        "State": _labels(US_STATES, rng.integers(len(US_STATES), size=n_rows)),
        "Account Length": _clipped_normal(rng, 101.0, 39.8, 1, 243, n_rows).round().astype(np.int64),
        "Area Code": rng.choice(np.array(AREA_CODES), n_rows, p=AREA_CODE_SHARES),
        "Phone": _phone_strings(rng.choice(PHONE_NUMBERS, size=n_rows, replace=False)),
    }
    intl_plan = rng.random(n_rows) < INTL_PLAN_SHARE
    vmail_plan = rng.random(n_rows) < VMAIL_PLAN_SHARE
    messages = _clipped_normal(rng, 29.3, 7.6, 4, 51, n_rows).round().astype(np.int64)
    columns["Int'l Plan"] = _labels(("no", "yes"), intl_plan)
    columns["VMail Plan"] = _labels(("no", "yes"), vmail_plan)
    columns["VMail Message"] = np.where(vmail_plan, messages, 0)

    for period, (mean_mins, sd_mins, max_mins, mean_calls, sd_calls, max_calls) in USAGE.items():
        minutes = _clipped_normal(rng, mean_mins, sd_mins, 0.0, max_mins, n_rows).round(1)
        calls = _clipped_normal(rng, mean_calls, sd_calls, 0, max_calls, n_rows).round().astype(np.int64)
        _add_usage(columns, period, minutes, calls)
    intl_calls = np.minimum(rng.poisson(4.5, n_rows), 20)
    intl_minutes = _clipped_normal(rng, 10.2, 2.8, 0.0, 20.0, n_rows).round(1)
    _add_usage(columns, "Intl", intl_minutes, intl_calls)
    columns["CustServ Calls"] = np.minimum(rng.poisson(1.56, n_rows), 9)

    logit = (
        CHURN_INTERCEPT
        + CHURN_WEIGHTS["CustServ Calls"] * columns["CustServ Calls"]
        + CHURN_WEIGHTS["Day Mins"] * (columns["Day Mins"] - USAGE["Day"][0])
        + CHURN_WEIGHTS["Int'l Plan"] * intl_plan
        + CHURN_WEIGHTS["no VMail Plan"] * ~vmail_plan
        + rng.normal(0.0, CHURN_NOISE_SD, n_rows)
    )
    churned = rng.random(n_rows) < 1.0 / (1.0 + np.exp(-logit))
    columns["Churn?"] = _labels(("False.", "True."), churned)
    return pd.DataFrame({name: columns[name] for name in CHURN_COLUMNS})


def _add_usage(columns: dict[str, Any], period: str, minutes: np.ndarray, calls: np.ndarray) -> None:
    """Add ``<period> Mins/Calls/Charge``; no calls means no minutes, charge is minutes * rate."""
    minutes = np.where(calls == 0, 0.0, minutes)
    columns[f"{period} Mins"] = minutes
    columns[f"{period} Calls"] = calls
    columns[f"{period} Charge"] = (minutes * RATE_PER_MINUTE[period]).round(2)


def _phone_strings(numbers: np.ndarray) -> np.ndarray:
    """Format integers below 10**7 as ``"ddd-dddd"`` by writing the ASCII bytes directly."""
    digits = numbers[:, None] // 10 ** np.arange(6, -1, -1) % 10 + ord("0")
    text = np.empty((len(numbers), 8), dtype=np.uint8)
    text[:, :3] = digits[:, :3]
    text[:, 3] = ord("-")
    text[:, 4:] = digits[:, 3:]
    return text.view("S8").ravel().astype("U8")


def _labels(values: tuple[str, ...] | np.ndarray, index: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``values[index]`` as a pandas string array; taking from the few values is much faster than
    converting a million numpy strings."""
    return pd.array(np.asarray(values), dtype="str").take(np.asarray(index, dtype=np.intp))


# ---------------------------------------------------------------------------------------------
# Online Retail II
# ---------------------------------------------------------------------------------------------

FIRST_DAY = np.datetime64("2009-12-01", "D")
LAST_DAY = np.datetime64("2011-12-09", "D")
FIRST_INVOICE = 489434
FIRST_CUSTOMER_ID = 12346
ROWS_PER_CUSTOMER = 40
MAX_CUSTOMERS = 6000
MEAN_LINES_PER_INVOICE = 12
MEAN_LINES_PER_CANCELLATION = 2
CANCELLED_SHARE = 0.02
GUEST_SHARE = 0.20  # invoices (and so about the same share of lines) without a Customer ID
OPENING_MINUTES = (8 * 60, 19 * 60)  # invoices are stamped between 08:00 and 18:59
PACK_SIZES = (1, 2, 3, 4, 6, 8, 10, 12, 24, 48)
PACK_SHARES = (0.22, 0.14, 0.09, 0.10, 0.12, 0.05, 0.05, 0.14, 0.06, 0.03)
BULK_QUANTITY = 24
BULK_DISCOUNT = 0.85
# Customer segments: share of customers, relative invoice rate, largest basket multiplier, and
# the first and last purchase as fractions of the whole period. "lapsed" stop buying early.
SEGMENTS = {
    "champion": (0.08, 12.0, 4, (0.00, 0.20), (0.97, 1.00)),
    "regular": (0.27, 4.0, 2, (0.00, 0.50), (0.90, 1.00)),
    "occasional": (0.45, 1.0, 1, (0.00, 0.90), (0.92, 1.00)),
    "lapsed": (0.20, 2.0, 1, (0.00, 0.30), (0.35, 0.60)),
}
COUNTRIES = (
    "United Kingdom", "Germany", "France", "EIRE", "Netherlands", "Spain", "Belgium",
    "Switzerland", "Portugal", "Australia", "Sweden", "Italy", "Norway",
)  # fmt: skip
# Shares of COUNTRIES: customers are mostly British, guests (no Customer ID) even more so.
CUSTOMER_COUNTRY_SHARES = (
    0.86, 0.03, 0.025, 0.02, 0.01, 0.01, 0.01, 0.008, 0.008, 0.007, 0.006, 0.003, 0.003,
)  # fmt: skip
GUEST_COUNTRY_SHARES = (
    0.95, 0.01, 0.01, 0.005, 0.004, 0.003, 0.003, 0.003, 0.003, 0.003, 0.002, 0.002, 0.002,
)  # fmt: skip
# The catalogue: every colour of every item, so 12 * 25 = 300 products with fixed codes and prices.
COLOURS = (
    "WHITE", "RED", "PINK", "BLUE", "GREEN", "IVORY", "BLACK", "CREAM", "SILVER", "GOLD", "PURPLE", "ORANGE",
)  # fmt: skip
ITEMS = (  # (stock code stem, description, unit price)
    ("85123", "HANGING HEART T-LIGHT HOLDER", 2.95),
    ("22423", "REGENCY CAKESTAND 3 TIER", 12.75),
    ("85099", "JUMBO BAG RETROSPOT", 2.08),
    ("20725", "LUNCH BAG SPACEBOY DESIGN", 1.65),
    ("47566", "PARTY BUNTING", 4.95),
    ("84879", "BIRD ORNAMENT", 1.69),
    ("22720", "SET OF 3 CAKE TINS PANTRY DESIGN", 4.95),
    ("21212", "PACK OF 72 RETROSPOT CAKE CASES", 0.55),
    ("22469", "HEART OF WICKER SMALL", 1.65),
    ("22457", "SLATE HEART CHALKBOARD", 2.95),
    ("22086", "PAPER CHAIN KIT 50'S CHRISTMAS", 2.95),
    ("22722", "RECIPE BOX PANTRY DESIGN", 2.95),
    ("22726", "ALARM CLOCK BAKELIKE", 3.75),
    ("22624", "VINTAGE SNAP CARDS", 0.85),
    ("84029", "GLASS STAR FROSTED T-LIGHT HOLDER", 4.25),
    ("22633", "HAND WARMER UNION JACK", 2.10),
    ("48187", "DOORMAT KEEP CALM AND COME IN", 7.95),
    ("37370", "CERAMIC STRAWBERRY DESIGN MUG", 1.49),
    ("22041", "WOODEN PICTURE FRAME", 2.55),
    ("21733", "MOROCCAN METAL LANTERN", 4.95),
    ("22197", "SMALL POPCORN HOLDER", 0.85),
    ("22835", "FELTCRAFT CUSHION OWL", 3.75),
    ("82583", "GIN AND TONIC METAL SIGN", 2.10),
    ("22112", "KNITTED HOT WATER BOTTLE", 4.65),
    ("22898", "CHILDRENS APRON DOLLY GIRL", 1.95),
)
POPULARITY_EXPONENT = 0.8  # Zipf-like: a few products sell far more often than the rest


def retail(n_rows: int = 20000, seed: int = 11) -> pd.DataFrame:
    """Invoice lines in the Online Retail II schema, in invoice (and so date) order.

    :param n_rows: number of invoice lines.
    :param seed: seed of the random generator; the same seed gives an identical frame.
    :return: a frame with columns :data:`RETAIL_COLUMNS`; ``InvoiceDate`` is datetime64,
        ``Customer ID`` is float with NaN for guest invoices.
    """
    _check_rows(n_rows)
    rng = np.random.default_rng(seed)
    codes, descriptions, prices, popularity = _catalogue()

    # Invoices: draw one size per possible invoice, keep as many as fill n_rows, trim the last.
    cancelled = rng.random(n_rows) < CANCELLED_SHARE
    lines = np.where(
        cancelled,
        rng.geometric(1 / MEAN_LINES_PER_CANCELLATION, n_rows),
        rng.geometric(1 / MEAN_LINES_PER_INVOICE, n_rows),
    )
    ends = np.cumsum(lines)
    n_invoices = int(np.searchsorted(ends, n_rows)) + 1
    lines, cancelled = lines[:n_invoices], cancelled[:n_invoices]
    lines[-1] -= ends[n_invoices - 1] - n_rows

    # Customers: segment, invoice rate, active window (in days) and country.
    n_customers = int(np.clip(n_rows // ROWS_PER_CUSTOMER, 1, MAX_CUSTOMERS))
    shares, rates, max_multiplier, first_range, last_range = (np.array(v) for v in zip(*SEGMENTS.values()))
    segment = rng.choice(len(SEGMENTS), n_customers, p=shares)
    rate = rates[segment] * rng.lognormal(0.0, 0.5, n_customers)
    trading_days = _trading_days()
    first_day = rng.uniform(first_range[segment, 0], first_range[segment, 1]) * len(trading_days)
    last_day = rng.uniform(last_range[segment, 0], last_range[segment, 1]) * len(trading_days)
    country = rng.choice(len(COUNTRIES), n_customers, p=CUSTOMER_COUNTRY_SHARES)

    # Each invoice belongs to a customer (in proportion to the rate) or to a guest.
    guest = rng.random(n_invoices) < GUEST_SHARE
    customer = rng.choice(n_customers, n_invoices, p=rate / rate.sum())
    window = np.where(guest, 0.0, first_day[customer]), np.where(guest, len(trading_days), last_day[customer])
    day = np.floor(window[0] + rng.random(n_invoices) * (window[1] - window[0])).astype(np.int64)
    day = np.minimum(day, len(trading_days) - 1)  # guard against rounding up to the window's end
    minute = rng.integers(*OPENING_MINUTES, n_invoices)
    invoice_country = np.where(
        guest, rng.choice(len(COUNTRIES), n_invoices, p=GUEST_COUNTRY_SHARES), country[customer]
    )
    stamp = trading_days[day].astype("datetime64[us]") + minute.astype("timedelta64[m]")

    # Number invoices in date order, as the shop did; cancellations carry a "C" prefix.
    order = np.argsort(stamp, kind="stable")
    lines, cancelled, guest, customer = lines[order], cancelled[order], guest[order], customer[order]
    stamp, invoice_country = stamp[order], invoice_country[order]
    numbers = (FIRST_INVOICE + np.arange(n_invoices)).astype(str)
    invoice = np.where(cancelled, np.char.add("C", numbers), numbers)
    customer_id = np.where(guest, np.nan, FIRST_CUSTOMER_ID + customer.astype(np.float64))

    # Lines: products by popularity, pack sizes, bigger baskets for the bigger segments.
    of_invoice = np.repeat(np.arange(n_invoices), lines)
    product = rng.choice(len(codes), n_rows, p=popularity)
    multiplier_cap = np.where(guest, 1, max_multiplier[segment[customer]])[of_invoice]
    quantity = rng.choice(np.array(PACK_SIZES), n_rows, p=PACK_SHARES) * rng.integers(1, multiplier_cap + 1)
    price = np.where(quantity >= BULK_QUANTITY, (prices[product] * BULK_DISCOUNT).round(2), prices[product])
    quantity = np.where(cancelled[of_invoice], -quantity, quantity)

    return pd.DataFrame(
        {
            "Invoice": _labels(invoice, of_invoice),
            "StockCode": _labels(codes, product),
            "Description": _labels(descriptions, product),
            "Quantity": quantity.astype(np.int64),
            "InvoiceDate": stamp[of_invoice],
            "Price": price,
            "Customer ID": customer_id[of_invoice],
            "Country": _labels(COUNTRIES, invoice_country[of_invoice]),
        }
    )


def _catalogue() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed product catalogue: stock codes, descriptions, unit prices, sale probabilities.

    Colour variants share the item's stock code stem with a letter suffix, as in the real file.
    Popularity is Zipf-like over a fixed scramble of the products, independent of any seed.
    """
    stems, names, unit_prices = zip(*ITEMS)
    suffixes = [chr(ord("A") + i) for i in range(len(COLOURS))]
    codes = np.char.add(np.repeat(stems, len(COLOURS)), np.tile(suffixes, len(ITEMS)))
    descriptions = np.char.add(np.tile(np.char.add(COLOURS, " "), len(ITEMS)), np.repeat(names, len(COLOURS)))
    prices = np.repeat(np.array(unit_prices), len(COLOURS))
    rank = np.arange(len(codes)) * 127 % len(codes)  # 127 is coprime with 300: a fixed permutation
    weight = 1.0 / (rank + 1.0) ** POPULARITY_EXPONENT
    return codes, descriptions, prices, weight / weight.sum()


def _trading_days() -> np.ndarray:
    """Every day from ``FIRST_DAY`` to ``LAST_DAY`` but Saturdays, when the shop is shut."""
    days = np.arange(FIRST_DAY, LAST_DAY + 1)
    weekday = (days.astype(np.int64) + 3) % 7  # Monday=0; 1970-01-01 was a Thursday
    return days[weekday != 5]


# ---------------------------------------------------------------------------------------------
# Shared
# ---------------------------------------------------------------------------------------------


def _check_rows(n_rows: object) -> None:
    if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
        raise ValueError(f"n_rows must be a positive int, got {n_rows!r}")


def _clipped_normal(
    rng: np.random.Generator, mean: float, sd: float, low: float, high: float, size: int
) -> np.ndarray:
    return np.clip(rng.normal(mean, sd, size), low, high)


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` as UTF-8 CSV with a header and no index, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, encoding="utf-8")
    return path


GENERATORS = {"churn": churn, "retail": retail}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write deterministic sample data as CSV.")
    parser.add_argument("dataset", choices=sorted(GENERATORS))
    parser.add_argument("--rows", type=int, default=None, help="number of rows (default: the generator's)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: the generator's)")
    parser.add_argument("--out", required=True, help="CSV file to write")
    args = parser.parse_args(argv)
    options = {key: value for key, value in (("n_rows", args.rows), ("seed", args.seed)) if value is not None}
    try:
        frame = GENERATORS[args.dataset](**options)
    except ValueError as error:
        parser.error(str(error))
    path = write_csv(frame, args.out)
    print(f"{path} {len(frame)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
