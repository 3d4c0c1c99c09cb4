"""The mineral catalogue: a TOML file mapping customs code prefixes to minerals.

Grain of the `ref.catalogue_codes` table: one row per code prefix. Grain of `ref.minerals`: one row per
mineral.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import polars as pl

DEFAULT_CATALOGUE = Path(__file__).parent / "catalogue" / "minerals.toml"
ALL_PRODUCTS_CATALOGUE = Path(__file__).parent / "catalogue" / "all_products.toml"

# The sections of the Harmonized System (2022): (roman numeral, first chapter, last chapter, title).
HS_SECTIONS = (
    ("I", 1, 5, "live animals; animal products"),
    ("II", 6, 14, "vegetable products"),
    ("III", 15, 15, "animal, vegetable or microbial fats and oils"),
    ("IV", 16, 24, "prepared foodstuffs; beverages, spirits and vinegar; tobacco"),
    ("V", 25, 27, "mineral products"),
    ("VI", 28, 38, "products of the chemical or allied industries"),
    ("VII", 39, 40, "plastics and rubber"),
    ("VIII", 41, 43, "raw hides and skins, leather, furskins"),
    ("IX", 44, 46, "wood, cork, plaiting materials"),
    ("X", 47, 49, "pulp of wood, paper and paperboard"),
    ("XI", 50, 63, "textiles and textile articles"),
    ("XII", 64, 67, "footwear, headgear, umbrellas"),
    ("XIII", 68, 70, "articles of stone, plaster, cement, ceramics, glass"),
    ("XIV", 71, 71, "pearls, precious stones and metals, jewellery"),
    ("XV", 72, 83, "base metals and articles of base metal"),
    ("XVI", 84, 85, "machinery and mechanical appliances; electrical equipment"),
    ("XVII", 86, 89, "vehicles, aircraft, vessels"),
    ("XVIII", 90, 92, "optical, medical and precision instruments; clocks; musical instruments"),
    ("XIX", 93, 93, "arms and ammunition"),
    ("XX", 94, 96, "miscellaneous manufactured articles"),
    ("XXI", 97, 97, "works of art, collectors' pieces and antiques"),
)
GROUPINGS = ("chapter", "section")


class CatalogueError(ValueError):
    """The catalogue file cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Catalogue:
    path: Path
    minerals: pl.DataFrame  # mineral, description, volume_floor_kg, volume_floor_usd
    codes: pl.DataFrame  # code, mineral, label, shared_with

    def floors(self) -> pl.DataFrame:
        return self.minerals.select("mineral", "volume_floor_kg", "volume_floor_usd")


def load_catalogue(path: Path | None = None) -> Catalogue:
    """Read and check a catalogue file; the default is the bundled `catalogue/minerals.toml`."""
    path = Path(path) if path else DEFAULT_CATALOGUE
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogueError(f"{path}: catalogue file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogueError(f"{path}: not valid TOML ({exc})") from None

    minerals = dict(doc.get("minerals") or {})
    codes = list(doc.get("codes") or [])
    everything = doc.get("all_products")
    if everything is not None:
        extra_minerals, extra_codes = _all_products(path, everything, set(minerals))
        minerals.update(extra_minerals)
        named = {str(c.get("code", "")).replace(".", "").strip() for c in codes}
        codes.extend(c for c in extra_codes if c["code"] not in named)
    if not minerals or not codes:
        raise CatalogueError(f"{path}: needs a [minerals.NAME] table and at least one [[codes]] entry, "
                             "or an [all_products] table")
    mineral_rows = []
    for name, spec in minerals.items():
        floors = []
        for key, unit in (("volume_floor_kg", "kg"), ("volume_floor_usd", "US dollars")):
            floor = spec.get(key)
            if not isinstance(floor, (int, float)) or floor <= 0:
                raise CatalogueError(f"{path}: [minerals.{name}] needs {key}, a positive number of {unit}")
            floors.append(float(floor))
        mineral_rows.append((name, str(spec.get("description", "")), *floors))
    code_rows = []
    seen: set[str] = set()
    for i, entry in enumerate(codes, start=1):
        code = str(entry.get("code", "")).replace(".", "").strip()
        mineral = entry.get("mineral")
        if not code.isdigit() or len(code) < 2:
            raise CatalogueError(f"{path}: [[codes]] entry {i}: code {entry.get('code')!r} is not 2-10 digits")
        if mineral not in minerals:
            raise CatalogueError(
                f"{path}: [[codes]] entry {i} ({code}): mineral {mineral!r} is not one of "
                f"{sorted(minerals)}; add a [minerals.{mineral}] table or fix the name"
            )
        if code in seen:
            raise CatalogueError(f"{path}: code {code} is listed twice")
        seen.add(code)
        code_rows.append((code, mineral, str(entry.get("label", "")), entry.get("shared_with")))
    return Catalogue(
        path=path,
        minerals=pl.DataFrame(
            mineral_rows,
            schema={"mineral": pl.String, "description": pl.String, "volume_floor_kg": pl.Float64,
                    "volume_floor_usd": pl.Float64},
            orient="row",
        ),
        codes=pl.DataFrame(
            code_rows,
            schema={"code": pl.String, "mineral": pl.String, "label": pl.String, "shared_with": pl.String},
            orient="row",
        ),
    )


def _all_products(path: Path, spec: dict, named: set[str]) -> tuple[dict[str, dict], list[dict]]:
    """[all_products]: every product, one group per HS chapter or section, as 2-digit chapter prefixes.
    Named [[codes]] entries are longer prefixes, so they keep their own mineral (the longest prefix wins)."""
    group_by = spec.get("group_by", "section")
    if group_by not in GROUPINGS:
        raise CatalogueError(f"{path}: [all_products] group_by must be one of {', '.join(GROUPINGS)}, "
                             f"not {group_by!r}")
    floors = {k: spec.get(k) for k in ("volume_floor_kg", "volume_floor_usd")}
    minerals: dict[str, dict] = {}
    codes: list[dict] = []
    for numeral, first, last, title in HS_SECTIONS:
        for chapter in range(first, last + 1):
            if chapter == 77:  # reserved in the HS
                continue
            name = f"hs{chapter:02d}" if group_by == "chapter" else f"section_{numeral}"
            if name in named:
                raise CatalogueError(f"{path}: [minerals.{name}] clashes with the [all_products] group of that "
                                     "name; rename the mineral")
            words = (f"HS chapter {chapter:02d} (section {numeral}: {title})" if group_by == "chapter"
                     else f"HS section {numeral}: {title} (chapters {first:02d}-{last:02d})")
            minerals[name] = {"description": words, **floors}
            codes.append({"code": f"{chapter:02d}", "mineral": name,
                          "label": f"every product of chapter {chapter:02d}"})
    return minerals, codes
