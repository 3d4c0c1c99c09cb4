"""Loader for CEPII BACI year files (`t,i,j,k,v,q`) and their country-codes file.

BACI's quirks, all handled here: HS codes stored as integers (leading zeros lost: 81010 is 081010), value
`v` in thousand US dollars, quantity `q` in metric tons written as a space-padded quoted string with
`NA` for unknown, exporter `i` and importer `j` as BACI's numeric country codes (M49-based, with
Comtrade's own codes such as 842 USA, 251 France, 490 "Other Asia, nes"). BACI reconciles both
declarations into one FOB figure per flow, so each row becomes an exporter-side record (flow X, reporter
= exporter) with source `baci`.

Country codes come from the `country_codes_V*.csv` file beside the year file when there is one (its
ISO3 column), otherwise from `ref.countries`. The HS revision comes from the file name
(BACI_HS17_Y2024_V202601.csv -> HS2017).
"""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl

from warehouse.files import IngestError, normalise_name, read_csv_text
from warehouse.national import canonical_frame, prepared_records, original_record
from warehouse.raw_load import Prepared

FORMAT = "baci"
CODES_FORMAT = "baci_country_codes"
HS_REVISIONS = {"HS92": "HS1992", "HS96": "HS1996", "HS02": "HS2002", "HS07": "HS2007", "HS12": "HS2012",
                "HS17": "HS2017", "HS22": "HS2022"}


def looks_like_baci(header: list[str]) -> bool:
    return [normalise_name(h) for h in header] == ["t", "i", "j", "k", "v", "q"]


def looks_like_country_codes(header: list[str]) -> bool:
    names = {normalise_name(h) for h in header}
    return "countrycode" in names and bool(names & {"countryiso3", "iso3digitalpha"})


def hs_revision_from_name(path: Path) -> str | None:
    match = re.search(r"_(HS\d\d)_", path.name.upper())
    return HS_REVISIONS.get(match.group(1)) if match else None


def _sibling_codes(path: Path) -> tuple[pl.DataFrame | None, str]:
    """BACI code -> ISO3 from the newest country_codes_V*.csv beside the year file."""
    candidates = sorted(path.parent.glob("country_codes_V*.csv"))
    if not candidates:
        return None, "no country_codes_V*.csv beside the file: BACI codes mapped through ref.countries (M49)"
    codes_path = candidates[-1]
    frame = read_csv_text(codes_path)
    by_norm = {normalise_name(c): c for c in frame.columns}
    iso_col = by_norm.get("countryiso3") or by_norm.get("iso3digitalpha")
    if "countrycode" not in by_norm or iso_col is None:
        raise IngestError(f"{codes_path}: a BACI country-codes file needs country_code and an ISO3 column")
    table = frame.select(
        pl.col(by_norm["countrycode"]).str.strip_chars().alias("code"),
        pl.col(iso_col).str.strip_chars().alias("iso3"),
    ).filter(pl.col("iso3").str.contains(r"^[A-Z0-9_]{3}$")).with_columns(
        # BACI writes Taiwan (490, "Other Asia, nes") as S19; one code for Taiwan across sources.
        pl.col("iso3").replace("S19", "TWN"))
    return table, f"country codes from {codes_path.name}"


def prepare_baci_file(path: Path, countries: pl.DataFrame) -> Prepared:
    frame = read_csv_text(path)
    columns = [c for c in frame.columns if c != "source_row"]
    if not looks_like_baci(columns):
        raise IngestError(f"{path}: a BACI file has the columns t,i,j,k,v,q; found {', '.join(columns)}")
    t, i, j, k, v, q = columns
    siblings, codes_note = _sibling_codes(path)
    ref = countries.select(pl.col("m49_code").cast(pl.String).alias("code"), "iso3")
    lookup = ref if siblings is None else pl.concat([siblings, ref.join(siblings, on="code", how="anti")])
    frame = (
        frame.with_columns(pl.col(i).str.strip_chars().alias("_i"), pl.col(j).str.strip_chars().alias("_j"))
        .join(lookup.rename({"code": "_i", "iso3": "_exporter"}), on="_i", how="left")
        .join(lookup.rename({"code": "_j", "iso3": "_importer"}), on="_j", how="left")
        .sort("source_row")
    )
    revision = hs_revision_from_name(path)
    code = pl.col(k).str.strip_chars()
    canonical = canonical_frame(frame, {
        "record": original_record(columns),
        "frequency": pl.lit("A"),
        "period_text": pl.col(t),
        "reporter_iso3": pl.col("_exporter").fill_null(pl.lit("BACI code ") + pl.col("_i")),
        "partner_label": pl.col("_j"),
        "partner_code_native": pl.col("_j"),
        "partner_iso3": pl.col("_importer"),
        "partner_kind": pl.when(pl.col("_importer").is_null()).then(pl.lit("unmapped")).otherwise(pl.lit("country")),
        "partner_how": pl.lit("BACI importer code ") + pl.col("_j") + pl.lit(" is not in the country-codes table"),
        "flow": pl.lit("X"),
        # Integers lost their leading zero: an HS6 code is six digits.
        "commodity_code": code.str.zfill(6),
        "code_system": pl.lit("HS6"),
        "hs_revision": pl.lit(revision),
        "value": pl.col(v),
        "currency": pl.lit("USD"),
        "value_scale": pl.lit("1000"),
        "value_basis": pl.lit("FOB"),
        "value_measure": pl.lit("BACI reconciled flow"),
        "qty": pl.col(q),
        "qty_unit": pl.lit("T"),
    })
    notes = "; ".join(filter(None, [codes_note, f"HS revision {revision}" if revision else "HS revision unknown"]))
    return prepared_records(path, canonical, source="baci", file_format=FORMAT, notes=notes)
