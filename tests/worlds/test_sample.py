"""The harness worlds' background follows the real partner structure: the spreads the generator uses are the
ones measured on CEPII BACI, and a world drawn with them is concentrated like the real trade."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from tests.conftest import REAL
from worlds.sample import generate
from worlds.stories import REAL_PARTNER_SPREAD

BACI = REAL / "baci-critical-2002-2024"
CHINA, USA = 156, 842


def _partner_values(hs6: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean USD value per partner over 2019-2023: China's exports, US imports."""
    files = [BACI / f"BACI_HS17_Y{year}_V202601_critical_subset.csv" for year in range(2019, 2024)]
    flows = pl.concat([pl.read_csv(f, columns=["t", "i", "j", "k", "v"], schema_overrides={"k": pl.String})
                       for f in files]).filter(pl.col("k") == hs6, pl.col("v") > 0)
    cn = flows.filter(pl.col("i") == CHINA).group_by("j").agg(pl.col("v").mean())["v"].to_numpy()
    us = flows.filter(pl.col("j") == USA).group_by("i").agg(pl.col("v").mean())["v"].to_numpy()
    return cn, us


@pytest.mark.skipif(not BACI.exists(), reason=f"the real BACI subset is not beside the project ({BACI})")
@pytest.mark.parametrize("mineral, hs6", [("antimony", "811010"), ("gallium_germanium", "811292")])
def test_the_generators_partner_spreads_are_those_of_baci(mineral, hs6):
    cn, us = _partner_values(hs6)
    spread_cn, spread_us, us_partners = REAL_PARTNER_SPREAD[mineral]
    assert np.std(np.log(cn)) == pytest.approx(spread_cn, abs=0.01)
    assert np.std(np.log(us)) == pytest.approx(spread_us, abs=0.01)
    assert len(us) / len(cn) == pytest.approx(us_partners, abs=0.01)


def _top5_share(frame: pl.DataFrame, hs6: str, direct: str) -> float:
    by_partner = (frame.filter(pl.col("hs_code") == hs6, pl.col("partner_iso3") != direct)
                  .group_by("partner_iso3").agg(pl.col("usd").sum())["usd"].sort(descending=True))
    return float(by_partner.head(5).sum() / by_partner.sum())


def test_a_world_with_the_real_background_is_concentrated_like_the_real_trade():
    """The five largest partners of China's antimony-metal exports carry 64 % in BACI (gallium 74 %). With
    the real spreads over the sample world's 50 partners (BACI: 64-72) they carry more, 87 % on average
    over seeds 0-9; with the demo world's spread about 48 %."""
    real = [_top5_share(generate(seed, (), real_background=True)[0], "811010", "USA") for seed in range(5)]
    demo = [_top5_share(generate(seed, ())[0], "811010", "USA") for seed in range(5)]
    assert np.mean(real) > 0.64 > np.mean(demo), (real, demo)
