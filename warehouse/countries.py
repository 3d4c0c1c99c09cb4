"""Country codes: UN Comtrade's M49-based numeric codes to ISO 3166 alpha-3.

Countries come from `pycountry` (ISO 3166-1 numeric codes coincide with UN M49 for countries; retired
countries from ISO 3166-3). Comtrade uses a few codes of its own, and areas that are not countries; those
live in the small override table below, each checked by a test against the Comtrade partner list.

The result is the lookup table `ref.countries` (grain: one row per Comtrade numeric code).
"""

from __future__ import annotations

import polars as pl
import pycountry

# Comtrade's own codes (not ISO 3166 numeric). kind: country | area_nes | special | world.
# Sources: the Comtrade reporter/partner reference lists (partnerCode -> partnerISO).
COMTRADE_OVERRIDES: dict[int, tuple[str, str, str]] = {
    0: ("WLD", "World", "world"),
    842: ("USA", "United States (Comtrade: incl. Puerto Rico and US Virgin Islands)", "country"),
    841: ("USA", "USA and Puerto Rico (...1980)", "country"),
    251: ("FRA", "France (Comtrade: incl. Monaco)", "country"),
    699: ("IND", "India (Comtrade code)", "country"),
    757: ("CHE", "Switzerland (Comtrade: incl. Liechtenstein)", "country"),
    579: ("NOR", "Norway (Comtrade: incl. Svalbard and Jan Mayen)", "country"),
    58: ("BEL", "Belgium-Luxembourg (...1998)", "country"),
    280: ("DEU", "Fed. Rep. of Germany (...1990)", "country"),
    886: ("YEM", "Arab Rep. of Yemen (...1990)", "country"),
    720: ("YMD", "Dem. Yemen (...1990)", "country"),
    891: ("SCG", "Serbia and Montenegro (...2005)", "country"),
    588: ("PAK", "East and West Pakistan (...1971)", "country"),
    230: ("ETH", "Ethiopia (...1992)", "country"),
    736: ("SDN", "Sudan (...2011)", "country"),
    866: ("VDR", "Dem. Rep. of Vietnam (...1974)", "country"),
    868: ("VNM", "Rep. of Vietnam (...1974)", "country"),
    590: ("PAN", "Panama, excl. Canal Zone (...1977)", "country"),
    412: ("XKX", "Kosovo", "country"),
    # Comtrade and BACI report Taiwan as 490 "Other Asia, nes"; national releases name it Taiwan. One code
    # for both, so that a Taiwan route is one route whatever the source.
    490: ("TWN", "Taiwan (Comtrade/BACI: 490 Other Asia, nes)", "country"),
    472: ("_AC", "Africa CAMEU region, nes", "area_nes"),
    471: ("R91", "CACM, nes", "area_nes"),
    129: ("A49", "Caribbean, nes", "area_nes"),
    221: ("E29", "Eastern Europe, nes", "area_nes"),
    697: ("R20", "Europe EFTA, nes", "area_nes"),
    473: ("A79", "LAIA, nes", "area_nes"),
    636: ("A79", "Rest of America, nes", "area_nes"),
    637: ("A59", "North America and Central America, nes", "area_nes"),
    290: ("F49", "Northern Africa, nes", "area_nes"),
    527: ("O19", "Oceania, nes", "area_nes"),
    577: ("F19", "Other Africa, nes", "area_nes"),
    568: ("E19", "Other Europe, nes", "area_nes"),
    879: ("F97", "Western Asia, nes", "area_nes"),
    849: ("PUS", "US Misc. Pacific Isds", "area_nes"),
    711: ("ZA1", "Southern African Customs Union (...1999)", "area_nes"),
    830: ("_CI", "Channel Islands", "area_nes"),
    536: ("NTZ", "Neutral Zone", "area_nes"),
    80: ("ATB", "Br. Antarctic Terr.", "area_nes"),
    530: ("ANT", "Netherlands Antilles (...2010)", "country"),
    532: ("ANT", "Netherlands Antilles and Aruba (...1985)", "country"),
    592: ("PCZ", "Panama-Canal-Zone (...1977)", "country"),
    582: ("PCI", "Pacific Isds (...1991)", "area_nes"),
    488: ("_MI", "Midway Islands", "area_nes"),
    872: ("_WI", "Wake Island", "area_nes"),
    459: ("_PM", "Peninsula Malaysia (...1963)", "area_nes"),
    461: ("_SH", "Sabah (...1963)", "area_nes"),
    457: ("_SK", "Sarawak (...1963)", "area_nes"),
    647: ("_RI", "Ryukyu Isd (...1972)", "area_nes"),
    698: ("_SM", "Sikkim (...1974)", "area_nes"),
    717: ("_RN", "Rhodesia Nyasaland (...1964)", "area_nes"),
    835: ("_TK", "Tanganyika (...1964)", "area_nes"),
    836: ("_ZP", "Zanzibar and Pemba Isd (...1964)", "area_nes"),
    658: ("KNA", "Saint Kitts, Nevis and Anguilla (...1980)", "country"),
    890: ("YUG", "Yugoslavia (...1991)", "country"),
    899: ("_X", "Areas, nes", "special"),
    837: ("X1", "Bunkers", "special"),
    838: ("X2", "Free Zones", "special"),
    839: ("XX", "Special Categories", "special"),
    97: ("EUR", "European Union", "special"),
}

COUNTRY_SCHEMA = {"m49_code": pl.Int32, "iso3": pl.String, "name": pl.String, "kind": pl.String}


def country_table() -> pl.DataFrame:
    """The `ref.countries` lookup: Comtrade numeric code -> ISO3, name and kind (country, area_nes, ...)."""
    rows: dict[int, tuple[str, str, str]] = {}
    for c in pycountry.historic_countries:
        numeric = getattr(c, "numeric", None)
        if numeric:
            rows[int(numeric)] = (c.alpha_3, c.name, "country")
    for c in pycountry.countries:  # current countries win over retired ones sharing a code
        rows[int(c.numeric)] = (c.alpha_3, getattr(c, "common_name", c.name), "country")
    rows.update(COMTRADE_OVERRIDES)
    return pl.DataFrame(
        [(code, *values) for code, values in sorted(rows.items())],
        schema=COUNTRY_SCHEMA,
        orient="row",
    )
