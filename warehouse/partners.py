"""Partner names (English, Chinese, customs spellings) and codes to ISO 3166 alpha-3.

National releases name partners rather than code them in M49: US Census writes "KOREA, SOUTH", China's
customs writes 韩国 or "Korea, Rep.". We resolve a name through, in order:

1. the small override table below: customs-specific names the libraries do not know, totals
   ("TOTAL FOR ALL COUNTRIES", 总值) and groupings (regions, EU, ASEAN) that are not partners;
2. an ISO alpha-3 code written as the name;
3. pycountry's Chinese (zh_CN) country names, shipped in its locale files;
4. the name-matching regular expressions of country_converter (its `country_data.tsv`), read directly:
   exactly one match is required, two matches are an ambiguity, not a guess.

A name none of these resolve comes back as `unmapped`; loaders turn it into a reject with its reason.
The work is per distinct name (a few hundred at most), never per row.
"""

from __future__ import annotations

import gettext
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

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


@lru_cache(maxsize=1)
def _coco_regexes() -> list[tuple[re.Pattern[str], str]]:
    table = resources.files("country_converter").joinpath("country_data.tsv").read_text(encoding="utf-8")
    frame = pl.read_csv(table.encode(), separator="\t", infer_schema=False, columns=["regex", "ISO3"])
    return [(re.compile(regex, re.IGNORECASE), iso3) for regex, iso3 in frame.iter_rows() if regex and iso3]


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
    matches = sorted({iso3 for regex, iso3 in _coco_regexes() if regex.search(name)})
    if len(matches) == 1:
        return Resolution(matches[0], "country", "country_converter name match")
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
