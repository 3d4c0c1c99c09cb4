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

    minerals = doc.get("minerals") or {}
    codes = doc.get("codes") or []
    if not minerals or not codes:
        raise CatalogueError(f"{path}: needs a [minerals.NAME] table and at least one [[codes]] entry")
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
