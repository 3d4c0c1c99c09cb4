"""Universe-sized worlds for the scale benchmark: thousands of HS6 codes, about two hundred partners, seven
years monthly, China-reported exports and US-reported imports in the UN Comtrade bulk CSV format.

Written in chunks of codes, appended to one file per reporter and year, so that the whole world is never
in memory (a 20 M-row world peaks at a few hundred MB here). Seeded and deterministic: the same seed and
size give byte-identical files.

What is in it, per code: each reporter trades with a random set of partners (sizes lognormal, months
present at random), prices and seasonality of the code's own; World rows (partner 0) and a few exact
duplicates, as real bulk files carry. Then stories, on a share of the codes:

- `planted`: China's direct exports of the code to the US collapse after the code's event month (a duty or
  a ban) while China -> hub and hub -> US rise together, lagged 0-2 months, for 6-12 months: the
  transshipment signature.
- `producer_surge`: after the same kind of event, a partner's exports to the US surge; China's exports to it
  are cut to a fifth, never rising.
- `hub_demand_surge`: China's exports to a hub rise, the hub's exports to the US stay flat.

The truth (truth.json beside the data folder, never in it) lists every story with its hub, code and
months, so that detection can be measured at scale.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Callable

import numpy as np
import polars as pl
import pycountry

from warehouse.countries import COMTRADE_OVERRIDES

FIRST_YEAR, LAST_YEAR = 2019, 2025
MONTHS = [date(y, m, 1) for y in range(FIRST_YEAR, LAST_YEAR + 1) for m in range(1, 13)]
CHINA, USA = 156, 842
COLUMNS = ["typeCode", "freqCode", "refPeriodId", "refYear", "refMonth", "period", "reporterCode", "reporterISO",
           "flowCode", "partnerCode", "partnerISO", "partner2Code", "cmdCode", "customsCode", "motCode",
           "qtyUnitCode", "qty", "netWgt", "cifvalue", "fobvalue", "primaryValue", "isReported", "isAggregate"]
# Chapters that exist in HS 2022 (77 is reserved; 98-99 are national).
CHAPTERS = [c for c in range(1, 98) if c != 77]


@dataclass(frozen=True)
class ScaleStory:
    hs_code: str
    hub_iso3: str
    kind: str  # planted | producer_surge | hub_demand_surge
    start: str  # first month of the hub -> US surge (planted, producer) or of the China -> hub rise (demand)
    months: int
    lag: int = 0
    share: float = 0.0  # the surge, as a share of the code's China -> US direct trade before the event


def partners(n: int = 200, seed: int = 0) -> list[tuple[int, str]]:
    """n trading partners (numeric code, ISO3), neither China nor the US, whose ISO 3166 numeric code is
    also Comtrade's partner code."""
    own = set(COMTRADE_OVERRIDES)
    candidates = sorted((int(c.numeric), c.alpha_3) for c in pycountry.countries
                        if c.alpha_3 not in ("CHN", "USA") and int(c.numeric) not in own)
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(candidates), size=min(n, len(candidates)), replace=False)
    return sorted(candidates[i] for i in chosen)


def hs_codes(n: int, seed: int) -> list[str]:
    """n distinct plausible HS6 codes spread over the chapters, sorted."""
    rng = np.random.default_rng(seed)
    codes: set[str] = set()
    while len(codes) < n:
        chapter = CHAPTERS[int(rng.integers(len(CHAPTERS)))]
        heading = int(rng.integers(1, 40))
        sub = int(rng.choice([10, 11, 19, 20, 21, 29, 30, 40, 50, 60, 80, 90]))
        codes.add(f"{chapter:02d}{heading:02d}{sub:02d}")
    return sorted(codes)


def _series(rng: np.random.Generator, n_codes: int, n_partners: int, n_months: int, active_share: np.ndarray,
            scale_t: np.ndarray) -> np.ndarray:
    """Tonnes per (code, partner, month): each code trades with a random share of the partners, sizes
    lognormal, present in a month with a probability that grows with the partner's size."""
    active = rng.random((n_codes, n_partners)) < active_share[:, None]
    weight = rng.lognormal(0, 1.4, (n_codes, n_partners)) * active
    weight = weight / np.maximum(weight.sum(axis=1, keepdims=True), 1e-12)
    presence_p = np.clip(0.35 + weight * 8, 0, 1)
    present = rng.random((n_codes, n_partners, n_months)) < presence_p[:, :, None]
    noise = rng.lognormal(0, 0.3, (n_codes, n_partners, n_months))
    return (scale_t[:, None, None] * weight[:, :, None]) * noise * present


def _records(tonnes: np.ndarray, usd_per_kg: np.ndarray, codes: list[str], partner_codes: np.ndarray,
             partner_iso: np.ndarray, reporter: int, reporter_iso: str, flow: str,
             rng: np.random.Generator) -> pl.DataFrame:
    """The non-zero cells of a (code, partner, month) cube as Comtrade bulk rows, with World totals and a
    few exact duplicates."""
    ci, pi, ti = np.nonzero(tonnes > 0.0005)
    kg = np.round(tonnes[ci, pi, ti] * 1000, 1)
    usd = np.round(kg * usd_per_kg[ci, ti] * rng.lognormal(0, 0.08, len(kg)), 0)
    frame = pl.DataFrame({"c": ci.astype(np.int32), "t": ti.astype(np.int32),
                          "partnerCode": partner_codes[pi], "partnerISO": partner_iso[pi], "kg": kg, "usd": usd})
    world = (frame.group_by("c", "t").agg(pl.col("kg").sum(), pl.col("usd").sum())
             .with_columns(partnerCode=pl.lit(0, dtype=pl.Int64), partnerISO=pl.lit("W00")))
    frame = pl.concat([frame, world.select(frame.columns)]).sort("c", "t", "partnerCode")
    n = frame.height
    tonnes_unit = pl.Series(rng.random(n) < 0.02)  # qty in tonnes (unit 21), no net weight
    month = pl.Series([d.month for d in MONTHS])
    year = pl.Series([d.year for d in MONTHS])
    frame = frame.with_columns(
        typeCode=pl.lit("C"), freqCode=pl.lit("M"),
        refYear=pl.col("t").replace_strict(list(range(len(MONTHS))), year.to_list(), return_dtype=pl.Int64),
        refMonth=pl.col("t").replace_strict(list(range(len(MONTHS))), month.to_list(), return_dtype=pl.Int64),
        reporterCode=pl.lit(reporter), reporterISO=pl.lit(reporter_iso), flowCode=pl.lit(flow),
        partner2Code=pl.lit(0), cmdCode=pl.col("c").replace_strict(list(range(len(codes))), codes,
                                                                   return_dtype=pl.String),
        customsCode=pl.lit("C00"), motCode=pl.lit(0),
        qtyUnitCode=pl.when(tonnes_unit).then(21).otherwise(8),
        qty=pl.when(tonnes_unit).then((pl.col("kg") / 1000).round(3)).otherwise(pl.col("kg")),
        netWgt=pl.when(tonnes_unit).then(None).otherwise(pl.col("kg")),
        cifvalue=pl.col("usd") if flow == "M" else pl.lit(None, dtype=pl.Float64),
        fobvalue=pl.col("usd") if flow == "X" else pl.lit(None, dtype=pl.Float64),
        primaryValue=pl.col("usd"), isReported=pl.lit(True), isAggregate=pl.lit(False),
    ).with_columns(
        period=(pl.col("refYear") * 100 + pl.col("refMonth")).cast(pl.String),
        refPeriodId=pl.col("refYear") * 10000 + pl.col("refMonth") * 100 + 1,
    )
    dups = frame.gather(np.sort(rng.choice(n, size=max(1, n // 20000), replace=False)))
    return pl.concat([frame, dups]).select(COLUMNS)


def _month_text(i: int) -> str:
    return f"{MONTHS[i].year}-{MONTHS[i].month:02d}"


def write_scale_world(out_dir: Path, rows: int, seed: int = 11, n_partners: int = 200, hold_back: int = 0,
                      codes_per_chunk: int = 40, progress: Callable[[int, int], None] | None = None) -> dict:
    """Write about `rows` Comtrade rows (China X + US M, monthly 2019-2025) into out_dir/data, one CSV per
    reporter and year, and the stories into out_dir/truth.json. hold_back: the last N months go to
    out_dir/releases/YYYY-MM/ instead (one file per reporter), as monthly releases.

    Returns a summary: rows written per file, codes, partners, stories."""
    out_dir = Path(out_dir)
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    plist = partners(n_partners, seed)
    # Partner 0 of each reporter's cube is the other one (the direct route); 1.. are the same partners.
    partner_codes = np.array([USA] + [c for c, _ in plist], dtype=np.int64)
    partner_iso = np.array(["USA"] + [iso for _, iso in plist])
    us_partner_codes = np.array([CHINA] + [c for c, _ in plist], dtype=np.int64)
    us_partner_iso = np.array(["CHN"] + [iso for _, iso in plist])
    n_p, n_t = len(partner_codes), len(MONTHS)
    # About 2 x 84 x 0.45 x 0.6 x 201 rows per code (two reporters, months present, active partners).
    per_code = 2 * n_t * 0.42 * 0.55 * n_p
    n_codes = max(codes_per_chunk, int(round(rows / per_code)))
    codes = hs_codes(n_codes, seed)
    first_story, last_story = MONTHS.index(date(2022, 1, 1)), n_t - 7
    release_months = list(range(n_t - hold_back, n_t)) if hold_back else []
    files: dict[str, int] = {}
    handles: dict[Path, object] = {}
    stories: list[ScaleStory] = []

    def target(reporter_iso: str, t: int) -> Path:
        if t in release_months:
            folder = out_dir / "releases" / _month_text(t)
            folder.mkdir(parents=True, exist_ok=True)
            return folder / f"comtrade_{reporter_iso}_{'X' if reporter_iso == 'CHN' else 'M'}_monthly_{_month_text(t)}.csv"
        return data_dir / f"comtrade_{reporter_iso}_{'X' if reporter_iso == 'CHN' else 'M'}_monthly_{MONTHS[t].year}.csv"

    def append(frame: pl.DataFrame, reporter_iso: str) -> None:
        keyed = frame.with_columns(_t=(pl.col("refYear") - FIRST_YEAR) * 12 + pl.col("refMonth") - 1)
        groups = [(target(reporter_iso, t), part) for (t,), part in keyed.partition_by("_t", as_dict=True).items()]
        by_path: dict[Path, list[pl.DataFrame]] = {}
        for path, part in groups:
            by_path.setdefault(path, []).append(part.drop("_t"))
        for path in sorted(by_path):
            fh = handles.get(path)
            if fh is None:
                fh = handles[path] = open(path, "w", encoding="utf-8", newline="")
                first = True
            else:
                first = False
            block = pl.concat(by_path[path])
            block.write_csv(fh, include_header=first)
            files[str(path)] = files.get(str(path), 0) + block.height

    t = np.arange(n_t)
    season = 1 + 0.15 * np.sin(2 * np.pi * (t % 12) / 12)
    try:
        for lo in range(0, n_codes, codes_per_chunk):
            chunk = codes[lo:lo + codes_per_chunk]
            k = len(chunk)
            scale = rng.lognormal(np.log(400), 1.5, k)  # China's exports of the code, t/month
            price = rng.lognormal(np.log(4), 1.0, k)  # USD/kg
            drift = np.exp(np.outer(rng.normal(0, 0.004, k), t))
            usd_per_kg = price[:, None] * drift * season[None, :]
            active = rng.uniform(0.2, 0.9, k)
            cn = _series(rng, k, n_p, n_t, active, scale)
            us = _series(rng, k, n_p, n_t, active, scale * rng.uniform(0.1, 0.6, k))
            # The direct route, in both reporters' books, a steady share of China's exports.
            direct = scale[:, None] * rng.uniform(0.05, 0.25, k)[:, None] * rng.lognormal(0, 0.2, (k, n_t))
            roll = rng.random(k)
            for j in range(k):
                if roll[j] >= 0.06:  # most codes have no story
                    continue
                s0 = int(rng.integers(first_story, last_story))
                hub = 1 + int(rng.integers(n_p - 1))
                length = int(rng.integers(6, 13))
                lag = int(rng.integers(0, 3))
                share = float(rng.uniform(0.3, 0.8))
                before = float(direct[j, :s0].mean())
                on_us = (t >= s0) & (t < s0 + length)
                on_cn = (t >= s0 - lag) & (t < s0 - lag + length)
                if roll[j] < 0.03:  # the route the job is for
                    direct[j, s0 - lag:] *= rng.uniform(0.05, 0.3)
                    cn[j, hub] += before * share * on_cn * rng.lognormal(0, 0.15, n_t)
                    us[j, hub] += before * share * 0.9 * on_us * rng.lognormal(0, 0.15, n_t)
                    kind = "planted"
                elif roll[j] < 0.045:  # a producer sells more to the US; China's exports to it do not move
                    direct[j, s0:] *= rng.uniform(0.05, 0.3)
                    us[j, hub] += before * share * on_us * rng.lognormal(0, 0.15, n_t)
                    cn[j, hub] *= 0.2
                    kind = "producer_surge"
                else:  # the hub buys more from China for itself
                    cn[j, hub] += before * share * (t >= s0) * rng.lognormal(0, 0.15, n_t)
                    kind = "hub_demand_surge"
                stories.append(ScaleStory(chunk[j], str(partner_iso[hub]), kind, _month_text(s0), length, lag,
                                          round(share, 3)))
            cn[:, 0, :] = direct
            us[:, 0, :] = direct * rng.lognormal(0, 0.05, (k, n_t))
            append(_records(cn, usd_per_kg, chunk, partner_codes, partner_iso, CHINA, "CHN", "X", rng), "CHN")
            append(_records(us, usd_per_kg * 1.05, chunk, us_partner_codes, us_partner_iso, USA, "USA", "M", rng),
                   "USA")
            if progress is not None:
                progress(min(lo + codes_per_chunk, n_codes), n_codes)
    finally:
        for fh in handles.values():
            fh.close()
    truth = out_dir / "truth.json"
    truth.write_text(json.dumps({"seed": seed, "rows": rows, "codes": n_codes, "partners": n_p,
                                 "stories": [asdict(s) for s in stories]}, indent=2), encoding="utf-8")
    return {"data_dir": data_dir, "truth": truth, "files": files, "rows_written": sum(files.values()),
            "codes": n_codes, "partners": n_p, "stories": len(stories)}
