"""Two plain rules a detector must beat, computed in SQL from the route legs (marts.fct_route_legs, monthly),
as an analyst would write them without any model:

- rule A: the smaller of the two legs' kg excess over their prior three years: 5-month window sum minus the
  sum of the 36 months before it (China -> hub and hub -> US);
- rule B: the smaller of the two legs' z-scores: the window's monthly mean against the prior 36 months'
  mean, in the prior months' standard deviations (floored at 10 % of the prior mean and at 1 kg), from 12
  prior months on.

A month a side did not publish counts as 0 kg here, as a plain rule over the published files would count
it. Higher = more suspicious. One row per (hs_code, hub_iso3, period) of monthly data; a route present
under two series (a metal's own national line and its HS6 line) takes the larger leg.
"""

from __future__ import annotations

import duckdb
import polars as pl

WINDOW, PRIOR, MIN_PRIOR = 5, 36, 12

_RULES = f"""
WITH legs AS (
    SELECT hs_code, hub_iso3, period,
           max(coalesce(cn_to_hub_kg, 0)) AS cn_kg, max(coalesce(hub_to_us_kg, 0)) AS us_kg
    FROM marts.fct_route_legs WHERE frequency = 'M'
    GROUP BY ALL
),
sums AS (
    SELECT hs_code, hub_iso3, period,
           sum(cn_kg) OVER w AS cn_w, sum(cn_kg) OVER p AS cn_p,
           sum(us_kg) OVER w AS us_w, sum(us_kg) OVER p AS us_p,
           avg(cn_kg) OVER w AS cn_wm, avg(cn_kg) OVER p AS cn_pm, stddev_pop(cn_kg) OVER p AS cn_ps,
           avg(us_kg) OVER w AS us_wm, avg(us_kg) OVER p AS us_pm, stddev_pop(us_kg) OVER p AS us_ps,
           count(*) OVER p AS n_prior
    FROM legs
    WINDOW w AS (PARTITION BY hs_code, hub_iso3 ORDER BY period ROWS BETWEEN {WINDOW - 1} PRECEDING AND CURRENT ROW),
           p AS (PARTITION BY hs_code, hub_iso3 ORDER BY period
                 ROWS BETWEEN {WINDOW + PRIOR - 1} PRECEDING AND {WINDOW} PRECEDING)
)
SELECT hs_code, hub_iso3, period,
       least(us_w - coalesce(us_p, 0), cn_w - coalesce(cn_p, 0)) AS rule_a_excess_kg,
       CASE WHEN n_prior >= {MIN_PRIOR} THEN least(
           (us_wm - us_pm) / greatest(us_ps, 0.1 * us_pm, 1),
           (cn_wm - cn_pm) / greatest(cn_ps, 0.1 * cn_pm, 1)) END AS rule_b_z
FROM sums
ORDER BY hs_code, hub_iso3, period
"""


def plain_rules(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """hs_code, hub_iso3, period, rule_a_excess_kg, rule_b_z (rule B is NULL before 12 prior months)."""
    return con.sql(_RULES).pl()
