"""Partner names to ISO alpha-3 (warehouse/partners.py): the spellings of the real releases, resolved from
pycountry's names and the module's own tables, never guessed."""

from __future__ import annotations

import re

import polars as pl
import pycountry
import pytest

from warehouse.partners import _english_names, resolve

# US Census Bureau country names as its trade releases print them (Schedule C), and English spellings of
# China's customs release; each with the code a reader expects.
RELEASE_NAMES = [
    ("KOREA, SOUTH", "KOR"), ("KOREA, NORTH", "PRK"), ("BURMA", "MMR"), ("RUSSIA", "RUS"), ("TURKEY", "TUR"),
    ("VIETNAM", "VNM"), ("LAOS", "LAO"), ("TAIWAN", "TWN"), ("HONG KONG", "HKG"), ("MACAU", "MAC"),
    ("BRUNEI", "BRN"), ("CZECH REPUBLIC", "CZE"), ("COTE D'IVOIRE", "CIV"), ("CONGO (KINSHASA)", "COD"),
    ("CONGO (BRAZZAVILLE)", "COG"), ("BOLIVIA", "BOL"), ("IRAN", "IRN"), ("SYRIA", "SYR"), ("TANZANIA", "TZA"),
    ("MOLDOVA", "MDA"), ("VENEZUELA", "VEN"), ("ST KITTS AND NEVIS", "KNA"), ("ST LUCIA", "LCA"),
    ("ST VINCENT AND THE GRENADINES", "VCT"), ("SINT MAARTEN", "SXM"), ("CURACAO", "CUW"), ("CAPE VERDE", "CPV"),
    ("ESWATINI", "SWZ"), ("TIMOR-LESTE", "TLS"), ("FALKLAND ISLANDS (ISLAS MALVINAS)", "FLK"),
    ("HEARD AND MCDONALD ISLANDS", "HMD"), ("PITCAIRN ISLANDS", "PCN"), ("BRITISH VIRGIN ISLANDS", "VGB"),
    ("VIRGIN ISLANDS OF THE UNITED STATES", "VIR"), ("WEST BANK ADMINISTERED BY ISRAEL", "PSE"),
    ("MICRONESIA", "FSM"), ("NORTH MACEDONIA", "MKD"), ("BAHAMAS", "BHS"), ("GAMBIA", "GMB"),
    ("UNITED KINGDOM", "GBR"), ("Korea, Rep.", "KOR"), ("Viet Nam", "VNM"), ("Türkiye", "TUR"),
    ("China, Hong Kong SAR", "HKG"), ("Russian Federation", "RUS"), ("U.S.A.", "USA"),
]


@pytest.mark.parametrize("name, iso3", RELEASE_NAMES)
def test_release_spellings_resolve(name, iso3):
    got = resolve(name)
    assert (got.iso3, got.kind) == (iso3, "country"), got


def test_no_two_countries_share_a_name():
    """Every name in the table (as its set of words) belongs to one country: a match is never a choice."""
    shared = {tuple(sorted(words)): codes for words, codes in _english_names().items() if len(codes) > 1}
    assert shared == {}


@pytest.mark.parametrize("name", ["Korea", "Islands", "Republic", "Democratic Republic", "Atlantis", "Is", ""])
def test_a_part_of_a_name_is_not_a_country(name):
    assert resolve(name).iso3 is None and resolve(name).kind == "unmapped"


def test_every_comtrade_partner_name_resolves_to_its_code(real_data):
    """UN Comtrade's partner list (310 names, with their ISO codes): every current partner that is an ISO
    country resolves to its code; the historical and 'nes' areas are never given another country's code."""
    partners = pl.read_csv(real_data / "comtrade-reference" / "comtradr" / "partner.csv", infer_schema=False)
    iso = {c.alpha_3 for c in pycountry.countries}
    rows = partners.filter(pl.col("iso_3").is_in(sorted(iso))).select("country", "iso_3").rows()
    assert len(rows) > 230
    historical = [(n, c) for n, c in rows if re.search(r"\(\.\.\.\d{4}\)|\bnes\b", n)]
    current = [(n, c) for n, c in rows if (n, c) not in historical]
    wrong = [(n, c, resolve(n).iso3) for n, c in current if resolve(n).iso3 != c]
    assert wrong == []
    guessed = [(n, c, resolve(n).iso3) for n, c in historical if resolve(n).iso3 not in (None, c)]
    assert guessed == []
