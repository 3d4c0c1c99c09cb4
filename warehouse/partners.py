"""Partner names (English, Chinese, customs spellings) and codes to ISO 3166 alpha-3.

National releases name partners rather than code them in M49: US Census writes "KOREA, SOUTH", China's
customs writes 韩国 or "Korea, Rep.". We resolve a name through, in order:

1. the small override table below: customs-specific names the libraries do not know, totals
   ("TOTAL FOR ALL COUNTRIES", 总值) and groupings (regions, EU, ASEAN) that are not partners;
2. an ISO alpha-3 code written as the name;
3. pycountry's Chinese (zh_CN) country names, shipped in its locale files;
4. pycountry's English names (name, official name, common name) and the customs spellings in ALIASES
   below, compared as sets of words once accents, punctuation, parentheses, "the", "of", "and" and the
   customs abbreviations (Rep., Dem., Isds, Br., Fr., St., ...) are normalised: "Dem. People's Rep. of
   Korea" and "Korea, Democratic People's Republic of" are the same words. Exactly one country must have
   them; two are an ambiguity, not a guess.

The tables are pycountry's (LGPL-2.1, used as a library) and this module's own; no name-matching data
under a licence that would bind the project (country_converter's regular expressions are GPL-3.0).

A name none of these resolve comes back as `unmapped`; loaders turn it into a reject with its reason.
The work is per distinct name (a few hundred at most), never per row.
"""

from __future__ import annotations

import gettext
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import polars as pl
import pycountry

# kind: country | world | group. Keys are normalised with `_key` (case-folded, spaces collapsed).
OVERRIDES: dict[str, tuple[str | None, str]] = {
    # Totals: a reporter's trade with all partners, never a partner itself.
    "total for all countries": ("WLD", "world"),
    "total": ("WLD", "world"),
    "world": ("WLD", "world"),
    "wld": ("WLD", "world"),
    "world total": ("WLD", "world"),
    "total all countries": ("WLD", "world"),
    "all countries": ("WLD", "world"),
    "总值": ("WLD", "world"),
    "总计": ("WLD", "world"),
    "合计": ("WLD", "world"),
    "全球": ("WLD", "world"),
    "世界": ("WLD", "world"),
    # Groupings printed among partners by US Census (regions, trade blocs) and China's customs (continents).
    "european union": (None, "group"),
    "euro area": (None, "group"),
    "asean": (None, "group"),
    "apec": (None, "group"),
    "opec": (None, "group"),
    "nato": (None, "group"),
    "oecd": (None, "group"),
    "usmca (nafta)": (None, "group"),
    "nafta": (None, "group"),
    "cafta-dr": (None, "group"),
    "pacific rim countries": (None, "group"),
    "twenty latin american republics": (None, "group"),
    "lafta": (None, "group"),
    "cacm": (None, "group"),
    "north america": (None, "group"),
    "central america": (None, "group"),
    "south america": (None, "group"),
    "europe": (None, "group"),
    "asia": (None, "group"),
    "africa": (None, "group"),
    "australia and oceania": (None, "group"),
    "oceania": (None, "group"),
    "亚洲": (None, "group"),
    "非洲": (None, "group"),
    "欧洲": (None, "group"),
    "拉丁美洲": (None, "group"),
    "北美洲": (None, "group"),
    "大洋洲": (None, "group"),
    "欧盟": (None, "group"),
    "东盟": (None, "group"),
    "亚太经合组织": (None, "group"),
    # China's customs (GACC) names that pycountry's zh_CN names miss.
    "中国香港": ("HKG", "country"),
    "中国澳门": ("MAC", "country"),
    "中国台湾": ("TWN", "country"),
    "俄罗斯联邦": ("RUS", "country"),
    "玻利维亚": ("BOL", "country"),
    "刚果（金）": ("COD", "country"),
    "刚果(金)": ("COD", "country"),
    "刚果（布）": ("COG", "country"),
    "刚果(布)": ("COG", "country"),
    "阿拉伯联合酋长国": ("ARE", "country"),
    "吉尔吉斯斯坦": ("KGZ", "country"),
    "柬埔寨": ("KHM", "country"),
    "英国": ("GBR", "country"),
    "美国": ("USA", "country"),
    # English spellings of customs releases that the regular expressions miss or find ambiguous.
    "china, hong kong sar": ("HKG", "country"),
    "hong kong, china": ("HKG", "country"),
    "china, macao sar": ("MAC", "country"),
    "other asia, nes": ("TWN", "country"),  # as warehouse/countries.py: Comtrade's 490 is Taiwan
    "korea, south": ("KOR", "country"),
    "korea, north": ("PRK", "country"),
    "korea, rep.": ("KOR", "country"),
    "rep. of korea": ("KOR", "country"),
    "congo (kinshasa)": ("COD", "country"),
    "congo (brazzaville)": ("COG", "country"),
    "congo, democratic republic of the congo": ("COD", "country"),
    "congo, republic of the congo": ("COG", "country"),
    "burma": ("MMR", "country"),
    "macedonia": ("MKD", "country"),
    "north macedonia": ("MKD", "country"),
    "kosovo": ("XKX", "country"),
    "usa": ("USA", "country"),
    "united states": ("USA", "country"),
    "united states of america": ("USA", "country"),
}

# Customs and statistical spellings (US Census, Comtrade, GACC's English release) that pycountry's English
# names do not carry, by ISO alpha-3. Matched as sets of words (step 4), so word order, case, accents and
# the abbreviations of _ABBREVIATIONS do not matter.
ALIASES: dict[str, tuple[str, ...]] = {
    "RUS": ("Russia",),
    "TUR": ("Turkey",),
    "MAC": ("Macau", "Macao"),
    "BRN": ("Brunei",),
    "CIV": ("Ivory Coast",),
    "CPV": ("Cape Verde",),
    "SWZ": ("Swaziland",),
    "TLS": ("East Timor",),
    "VAT": ("Vatican City", "Vatican"),
    "PSE": ("Palestine", "West Bank", "Gaza Strip", "West Bank administered by Israel",
            "Gaza Strip administered by Israel", "State of Palestine"),
    "FSM": ("Micronesia", "FS Micronesia", "Federated States of Micronesia"),
    "PRK": ("North Korea",),
    "KOR": ("South Korea",),
    "CZE": ("Czech Republic",),
    "SHN": ("Saint Helena",),
    "SJM": ("Svalbard and Jan Mayen Islands",),
    "WLF": ("Wallis and Futuna Islands",),
    "ATF": ("French Southern and Antarctic Lands", "Fr. South Antarctic Terr.", "French Southern Territories"),
    "HMD": ("Heard and McDonald Islands",),
    "PCN": ("Pitcairn Islands",),
    "VIR": ("US Virgin Islands", "U.S. Virgin Islands", "Virgin Islands of the United States"),
    "SXM": ("Saint Maarten", "Sint Maarten"),
    "MAF": ("Saint Martin",),
    "BES": ("Bonaire", "Bonaire, Sint Eustatius and Saba"),
    "BIH": ("Bosnia Herzegovina",),
    "FRA": ("Metropolitan France",),
    "NOR": ("Norway, excluding Svalbard and Jan Mayen",),
    "UMI": ("United States Minor Outlying Islands",),
    "HKG": ("Hong Kong SAR", "China, Hong Kong SAR"),
    "TWN": ("Taiwan",),
    "MMR": ("Burma",),
    "COD": ("Congo, Democratic Republic", "DR Congo", "Zaire"),
    "USA": ("U.S.A.", "U.S.", "US"),
    "GBR": ("Great Britain", "United Kingdom of Great Britain and Northern Ireland", "UK"),
}

# Abbreviations of customs releases, expanded before names are compared (whole words, after punctuation is
# removed: "Rep." is the word "rep").
_ABBREVIATIONS = {
    "rep": "republic", "dem": "democratic", "fed": "federal", "isds": "islands", "is": "islands",
    "isl": "islands", "island": "islands", "br": "british", "fr": "french", "terr": "territory", "territories": "territory",
    "st": "saint", "ste": "sainte", "n": "northern", "utd": "united",
    "peoples": "people", "sar": "", "excl": "excluding",
}
_STOPWORDS = {"the", "of", "and", ""}


@dataclass(frozen=True)
class Resolution:
    iso3: str | None
    kind: str  # country | world | group | unmapped
    how: str  # which rule resolved it, or why not


def _key(name: str) -> str:
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", name)).strip().casefold()


@lru_cache(maxsize=1)
def _chinese_names() -> dict[str, str]:
    translation = gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=["zh_CN"])
    names: dict[str, set[str]] = {}
    for country in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            english = getattr(country, attr, None)
            if english:
                chinese = translation.gettext(english)
                if chinese != english:
                    names.setdefault(_key(chinese), set()).add(country.alpha_3)
    return {name: codes.pop() for name, codes in names.items() if len(codes) == 1}


def _words(name: str) -> frozenset[str]:
    """The words of an English country name, compared as a set: accents, case, punctuation, parenthesised
    parts ("(Malvinas)", "(...1990)", "(Overseas France)"), "the", "of", "and" and possessive s dropped,
    customs abbreviations expanded. "Dem. People's Rep. of Korea" -> {democratic, people, republic, korea}."""
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = re.sub(r"\([^)]*\)", " ", text).replace("&", " and ")
    text = re.sub(r"\bu\.\s?s\.(\s?a\.)?", lambda m: " usa " if m.group(1) else " us ", text)  # U.S., U.S.A.
    text = re.sub(r"['’]s\b", "", text)
    words = re.sub(r"[^\w]+", " ", text).split()
    return frozenset(w for w in (_ABBREVIATIONS.get(w, w) for w in words) if w not in _STOPWORDS)


@lru_cache(maxsize=1)
def _english_names() -> dict[frozenset[str], frozenset[str]]:
    """Sets of words -> the ISO alpha-3 codes of the countries whose English names (pycountry's, ALIASES)
    have them."""
    names: dict[frozenset[str], set[str]] = {}
    for country in pycountry.countries:
        for attr in ("name", "official_name", "common_name"):
            english = getattr(country, attr, None)
            if english:
                names.setdefault(_words(english), set()).add(country.alpha_3)
    for iso3, spellings in ALIASES.items():
        for spelling in spellings:
            names.setdefault(_words(spelling), set()).add(iso3)
    return {words: frozenset(codes) for words, codes in names.items() if words}


@lru_cache(maxsize=1)
def _alpha3() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.countries)


def resolve(name: str | None) -> Resolution:
    """The ISO3 code and kind of one partner name."""
    if name is None or not name.strip():
        return Resolution(None, "unmapped", "no partner name")
    key = _key(name)
    if key in OVERRIDES:
        iso3, kind = OVERRIDES[key]
        return Resolution(iso3, kind, "override table")
    if len(key) == 3 and key.upper() in _alpha3():
        return Resolution(key.upper(), "country", "ISO alpha-3 code")
    chinese = _chinese_names().get(key)
    if chinese:
        return Resolution(chinese, "country", "pycountry zh_CN name")
    matches = sorted(_english_names().get(_words(name), ()))
    if len(matches) == 1:
        return Resolution(matches[0], "country", "English name")
    if matches:
        return Resolution(None, "unmapped", f"partner name {name!r} matches several countries ({', '.join(matches)})")
    return Resolution(
        None, "unmapped",
        f"partner name {name!r} is not a known country name; add it to warehouse/partners.py OVERRIDES",
    )


def resolve_names(names: pl.Series) -> pl.DataFrame:
    """A lookup frame (partner_label, partner_iso3, partner_kind, partner_how) for the distinct names given."""
    distinct = names.drop_nulls().unique().sort().to_list()
    resolved = [resolve(n) for n in distinct]
    return pl.DataFrame(
        {
            "partner_label": distinct,
            "partner_iso3": [r.iso3 for r in resolved],
            "partner_kind": [r.kind for r in resolved],
            "partner_how": [r.how for r in resolved],
        },
        schema={"partner_label": pl.String, "partner_iso3": pl.String, "partner_kind": pl.String,
                "partner_how": pl.String},
    )


def attach_partners(frame: pl.DataFrame, label: pl.Expr) -> pl.DataFrame:
    """`frame` plus `_partner` (the partner label, trimmed) and partner_iso3 / partner_kind / partner_how
    resolved from it, one resolution per distinct label."""
    labelled = frame.with_columns(label.str.strip_chars().alias("_partner"))
    return labelled.join(resolve_names(labelled["_partner"]), left_on="_partner", right_on="partner_label", how="left")
