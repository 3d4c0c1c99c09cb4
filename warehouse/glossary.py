"""What every column of the warehouse means, as `COMMENT ON COLUMN` text (warehouse/comments.py applies it).

A column keeps one meaning wherever it appears (hub_iso3 in the mart, the features, the scores and the
flagged list), so the glossary is by column name: the leg columns by pattern (a leg and a unit, then what
is taken over it: the window, the prior periods, a median, a z-score...), the rest by name. A relation that
uses a name in a meaning of its own says so in warehouse/comments.py COLUMNS, which wins.
`column_comment` returns None for a name it does not know; tests/flows/test_pipeline.py fails on any column
of the warehouse left without a comment.
"""

from __future__ import annotations

import re

# The legs of a route (marts.fct_route_legs), in words.
LEGS = {
    "cn_to_hub": "China's exports to the hub (China-reported, or CEPII BACI)",
    "hub_to_us": "US imports from the hub (US-reported, or CEPII BACI)",
    "cn_to_us": "China's exports to the US (the direct route, China's side)",
    "us_from_cn": "US imports from China (the direct route, the US side)",
    "cn_to_world": "China's exports to all partners",
    "us_from_world": "US imports from all partners",
    "hub_reported_from_cn": "the hub's own report of its imports from China (the mirror of cn_to_hub)",
    "hub_reported_to_us": "the hub's own report of its exports to the US (the mirror of hub_to_us)",
}
UNITS = {"kg": "kilograms", "usd": "US dollars", "fob_usd": "US dollars, CIF values brought to FOB (mirror gaps)"}
_LEG = "|".join(sorted(LEGS, key=len, reverse=True))
_UNIT = "fob_usd|kg|usd"
WINDOW = "the scoring window (the period and the W-1 before it; W = 5 months or 1 year by default)"
PRIOR = ("the prior periods before the window (36 months or 3 years by default; with a shorter history, over "
         "the periods that exist, scaled to the full prior: see prior_periods)")

# (pattern, template): {leg} and {unit} are filled from the match.
PATTERNS: list[tuple[str, str]] = [
    (r"^(?P<leg>hub_reported_from_cn|hub_reported_to_us)_(?P<unit>kg|fob_usd)$",
     "{leg} in the period, in {unit}. 0 when the hub reported none (hub_reports_period says whether it "
     "reported anything that period)."),
    (rf"^(?P<leg>{_LEG})_(?P<unit>{_UNIT})$",
     "{leg} in the period, in {unit}. 0 = no trade; NULL = unknown (that side did not publish the period)."),
    (rf"^(?P<leg>{_LEG})_(?P<unit>{_UNIT})_window$", "{leg}, in {unit}, summed over " + WINDOW + "."),
    (rf"^(?P<leg>{_LEG})_(?P<unit>{_UNIT})_prior$", "{leg}, in {unit}, summed over " + PRIOR + "."),
    (rf"^(?P<leg>{_LEG})_kg_median_prior$", "{leg}: the median kilograms per period over " + PRIOR + "."),
    (rf"^(?P<leg>{_LEG})_kg_mad_prior$",
     "{leg}: the median absolute deviation of its kilograms per period over the prior periods (kg per period)."),
    (rf"^(?P<leg>{_LEG})_(?P<unit>kg|usd)_spike_ratio$",
     "{leg}: the window's {unit} / max(the prior's, the mineral's volume floor): the seeds' test is > 1 (the "
     "window beat the whole prior three years). A window of 5 months against 36 months of prior: a steady "
     "flow reads about 0.14, not 1."),
    (rf"^(?P<leg>{_LEG})_(?P<unit>kg|usd)_excess$",
     "{leg}: the window's {unit} minus the prior run rate over as many periods (prior x W / P): what the "
     "window carried above its usual rate. Negative when it carried less."),
    (rf"^(?P<leg>{_LEG})_kg_robust_z$",
     "{leg}: the window's kilograms per period against the prior median, in robust standard deviations "
     "(1.4826 x MAD, floored at the mineral's volume floor per period). Unitless; higher = more unusual."),
    (rf"^(?P<leg>{_LEG})_kg_z_now$",
     "{leg}: the period's own kilograms against the prior median, in robust standard deviations (as the "
     "leg's _robust_z). Unitless."),
    (rf"^(?P<leg>{_LEG})_kg_mean_z$",
     "{leg}: the window's mean kilograms per period against the prior mean, in the prior standard deviation "
     "(floored at 10 % of the mean and 1/100 of the volume floor per period). Unitless."),
    (rf"^(?P<leg>{_LEG})_usd_mean_z$",
     "{leg} in US dollars at the prior's world price (divided by world_unit_value_change when above 1): the "
     "window's mean per period against the prior mean, in the prior standard deviation. Unitless."),
    (r"^(?P<share>hub_share_of_cn_exports|hub_share_of_us_imports|cn_direct_share_of_us_imports)_(?P<when>window|prior)$",
     "{share}, in kilograms, over {when}. 0..1."),
    (r"^(?P<share>hub_share_of_cn_exports|hub_share_of_us_imports|cn_direct_share_of_us_imports)_change$",
     "{share}: the share in the window minus the share in the prior periods (kilograms). -1..1."),
    (r"^co_movement_lag(?P<lag>\d)$",
     "Correlation of log(1 + China->hub kg) {lag} period(s) earlier with log(1 + hub->US kg), over the route's "
     "last periods (12 months by default). -1..1; 0 when either leg is constant."),
    (r"^mirror_gap_(?P<pair>cn_hub|cn_us|hub_us)_(?P<unit>kg|usd)$",
     "Mirror gap of the {pair} flow over the window: (importer-reported - exporter-reported) / the larger, "
     "in {unit} (values at FOB), floored so that tiny flows do not swing it. -1..1: near 0 when both sides "
     "agree, towards +1 when the importer declares more, towards -1 when the exporter does."),
    (r"^one_sided_(?P<pair>cn_hub|hub_us)$",
     "The {pair} flow is declared by one side only in the window (the other side reported trade then, but "
     "none of this flow)."),
]
_SHARES = {
    "hub_share_of_cn_exports": "The hub's share of China's exports of the product",
    "hub_share_of_us_imports": "The hub's share of US imports of the product",
    "cn_direct_share_of_us_imports": "China's direct share of US imports of the product",
}
_WHEN = {"window": WINDOW, "prior": PRIOR}
_PAIRS = {"cn_hub": "China -> hub", "cn_us": "China -> US", "hub_us": "hub -> US"}
_UNIT_WORDS = {"kg": "kilograms", "usd": "US dollars"}

KEY = "Part of the key."
NAMES: dict[str, str] = {
    # Keys and labels
    "frequency": "M (monthly) or A (annual): monthly and annual series are never mixed. " + KEY,
    "mineral": "The watched series (ref.minerals): antimony, gallium, germanium, or a shared series such as "
               "gallium_germanium where an HS6 line holds several metals.",
    "hs_code": "The product: its HS6 heading in HS 2022 (a national line keeps its own code in raw and staging).",
    "hs6": "The HS6 heading (HS 2022) the code belongs to.",
    "hs_label": "The product's description (the catalogue).",
    "hub_iso3": "The hub: the third country (ISO 3166 alpha-3) between China and the US.",
    "hub_name": "The hub's name.",
    "period": "The period: the first day of its month (M) or year (A).",
    "run_id": "The run (main.runs) that wrote the row: UTC start time and a random suffix.",
    "model_id": "The model (models.registry) that scored the row.",
    "previous_run_id": "The previous successful run compared with.",
    "iso3": "ISO 3166 alpha-3 code (WLD for the world; NULL for a grouping).",
    "m49_code": "UN M49 numeric area code, as Comtrade writes partners and reporters.",
    "name": "The area's name.",
    "kind": "country, area_nes (an unspecified area), group (a region or bloc) or world.",
    "code": "A watched product code: an HS6 heading or a national line (8 or 10 digits).",
    "label": "The code's description.",
    "shared_with": "Other goods sharing the code's HS6 line (e.g. indium, niobium, vanadium in 811292): a "
                   "route in it is small against its line.",
    "description": "What the mineral is and why it is watched.",
    "volume_floor_kg": "The mineral's volume floor: the smallest excess (kg per scoring window) that counts as a "
                       "real route; ratios use it as the smallest denominator.",
    "volume_floor_usd": "The volume floor in value (USD per scoring window).",
    "qty_unit": "A quantity unit as the source writes it.",
    "kg_per_unit": "Kilograms per unit (NULL: the unit gives no weight, such as items or litres).",
    "census_import_measure": "Which US Census measure is read as imports: general imports or imports for "
                             "consumption.",
    "cif_fob_rate": "Share taken off CIF values to compare them with FOB values in mirror gaps (0.10 = 10 %).",
    "from_revision": "The HS edition of the older code.",
    "from_code": "The code in the older HS edition.",
    "to_code": "The HS 2022 heading it maps to.",
    "relationship": "1:1, n:1 (several old codes into one) or 1:n (an old code split: its trade is not "
                    "assigned to one heading).",
    "concordance_relationship": "How the record's code maps to HS 2022 (ref.hs_concordance): 1:1, n:1 or 1:n.",
    "note": "Free text: the analyst's note, or the source's remark.",
    # Loads, records, rejects
    "batch_id": "The run (run_id) that loaded the file.",
    "source_file": "The file the row came from, as named in the data folder.",
    "file_sha256": "SHA-256 of the file's bytes: the same file loaded twice is one load.",
    "file_format": "How the file was read (Comtrade CSV or JSON, Census, GACC, BACI, rate table, user table).",
    "source_row": "The row's line in its file (1 = the first data row).",
    "part": "Which part of a source line (a line can carry several flows, e.g. world total and China).",
    "loaded_at": "When the row was loaded (UTC).",
    "rows_read": "Data rows read from the file: rows_read = rows_loaded + rows_rejected.",
    "rows_loaded": "Rows accepted into the raw layer.",
    "rows_rejected": "Rows set aside in raw.rejects, each with its reason.",
    "notes": "What the loader noticed about the file (quirks fixed, totals skipped).",
    "column_name": "The column that was wrong.",
    "bad_value": "The value found there, as text.",
    "reason": "Why, in words.",
    "record": "The whole rejected record, as JSON.",
    "rejected_at": "When the row was set aside (UTC).",
    "freq_code": "Comtrade's frequency: M or A.",
    "period_from": "The period as the file wrote it (YYYYMM or YYYY).",
    "reporter_code": "The reporter's M49 code (156 China, 842 the US).",
    "flow_code": "Comtrade's flow: X exports, M imports (re-exports and re-imports are set aside).",
    "partner_code": "The partner's M49 code (0 = World).",
    "partner2_code": "Comtrade's second partner (0 = none; other values are set aside as breakdowns).",
    "cmd_code": "The commodity code as published (HS6 for watched lines).",
    "customs_code": "Comtrade's customs procedure (C00 = all).",
    "mot_code": "Comtrade's mode of transport (0 = all).",
    "qty_unit_code": "Comtrade's quantity unit code (8 = kg).",
    "qty": "The quantity as published, in its unit.",
    "net_wgt": "Net weight in kg as published (NULL when not).",
    "cif_value": "Import value CIF (cost, insurance, freight) in USD, as published.",
    "fob_value": "Export value FOB (free on board) in USD, as published.",
    "primary_value": "Comtrade's primary value in USD: CIF for imports, FOB for exports.",
    "is_aggregate": "Comtrade's aggregate flag (an aggregate row is set aside).",
    "has_breakdown_columns": "The file carries partner2, customs and transport columns (a bulk file).",
    "source": "Which release: comtrade, census, gacc, baci or user.",
    "is_ytd": "The release gives year-to-date totals (turned into months in staging).",
    "reporter_iso3": "The reporting country (ISO alpha-3).",
    "reporter": "The reporter as the source names it.",
    "partner": "The partner as the source names it.",
    "partner_label": "The partner as the release names it.",
    "partner_code_native": "The partner's code in the release's own code list.",
    "partner_iso3": "The partner (ISO alpha-3), resolved from its name or code (warehouse/partners.py).",
    "partner_kind": "country, world, group or unmapped (an unmapped partner is set aside with its reason).",
    "counterpart_iso3": "The partner of the revised flow (a hub, China or the US).",
    "flow": "X exports or M imports, from the reporter's side.",
    "commodity_code": "The code as the release writes it (HS6, HS8 or HS10).",
    "code_system": "hs6 or the national nomenclature the code belongs to.",
    "hs_revision": "The HS edition the code is written in.",
    "value": "The value as published, in `currency` x `value_scale`.",
    "currency": "The value's currency (USD, CNY...).",
    "value_scale": "Multiplier to the currency unit (1000 for values in thousands).",
    "value_basis": "CIF or FOB.",
    "value_measure": "Which measure the value is (e.g. general imports, imports for consumption).",
    "units_per_usd": "Currency units per US dollar for the period.",
    "rate_source": "Where the rate came from.",
    "value_usd": "The value in US dollars (converted at the period's rate where needed).",
    "value_fob_usd": "The value in US dollars with CIF brought to FOB (ref.source_settings.cif_fob_rate).",
    "qty_kg": "The quantity in kilograms (NULL: not published or not convertible).",
    "qty_kg_source": "How qty_kg was found: net weight, the quantity in kg, converted from another unit, or none.",
    "exclusion_reason": "Why the record is not used as a flow (NULL: used): duplicate, total, grouping, "
                        "superseded by a later release, outside the catalogue...",
    "mineral_code_length": "The length of the catalogue code the flow matched (6 for HS6, 8 or 10 for national lines).",
    "records": "How many source records the flow adds up.",
    "old_file_sha256": "The file of the earlier figures.",
    "old_source_file": "The file of the earlier figures.",
    "old_batch_id": "The run that loaded the earlier figures.",
    "old_value_usd": "The earlier value (USD).",
    "old_qty_kg": "The earlier quantity (kg).",
    "new_source_file": "The file of the revised figures.",
    "new_batch_id": "The run that loaded the revised figures.",
    "new_value_usd": "The revised value (USD).",
    "new_qty_kg": "The revised quantity (kg).",
    "value_change_usd": "Revised minus earlier value (USD).",
    "qty_change_kg": "Revised minus earlier quantity (kg).",
    "revised_flows": "How many flows were published again with other figures.",
    "first_period": "The first period concerned.",
    "last_period": "The last period concerned.",
    "sources": "Which releases carried the revisions.",
    "flag_change": "What the revision did to the route's flag: newly flagged, no longer flagged, still flagged, "
                   "not flagged before or now, or direct route (feeds every hub of the code).",
    # The mart's other columns
    "value_without_kg_usd": "Trade of the route's legs whose weight was not published (USD); its kg are estimated "
                            "in kg_estimated.",
    "kg_estimated": "Kilograms estimated for the trade without a published weight, at the product's median unit "
                    "value that period.",
    "value_kg_missing_usd": "Trade whose weight is unknown and could not be estimated (USD): its kg count as 0, "
                            "so kg features do not hold there (see kg_coverage).",
    "hub_reports_period": "The hub reported any watched flow that period (else a missing mirror is no signal).",
    "hub_reports_window": "In how many periods of the window the hub reported any trade.",
    "cn_to_hub_source": "Which releases fed the China -> hub leg (comma-separated).",
    "hub_to_us_source": "Which releases fed the hub -> US leg (comma-separated).",
    "cn_side_published": "China's side published the period (else its legs are unknown, not zero).",
    "us_side_published": "The US side published the period (else its legs are unknown, not zero).",
    # Features (features/route_features.py gives each formula)
    "prior_periods": "How many prior periods the row was scored from (12 to 36 months, or years): fewer than "
                     "full_prior_periods means a short history, scaled to the full prior.",
    "min_prior_periods": "The fewest prior periods a row is scored from (12 months by default).",
    "full_prior_periods": "The full prior the sums are scaled to (36 months by default).",
    "window_periods": "Periods in the scoring window (W).",
    "has_history": "The route has the window and at least min_prior_periods before it on the grid, both legs "
                   "known: the row can be scored.",
    "pass_through_kg": "The hub's exports to the US in the window / China's exports to the hub over the window "
                       "and the 2 periods before it (transit), scaled to the window's length: how much of what "
                       "China sent reached the US. 0..10; 0 when China sent nothing.",
    "hub_to_us_peak_share": "The largest single period's share of the window's hub -> US kg: 1 for one lump, 1/W "
                            "for a steady flow.",
    "unit_value_vs_world": "The hub -> US unit value (USD/kg) over the window / the US world import unit value: "
                           "far from 1, the goods or their declaration differ from the market's.",
    "unit_value_vs_own_history": "The hub -> US unit value over the window / over the prior periods.",
    "world_unit_value_change": "The US world import unit value in the window / in the prior periods: above 1 the "
                               "product's price rose (value spikes then say less than weight). 1 when undefined.",
    "co_spike_ratio_kg": "The smaller of both legs' kg spike ratios: both legs beat their past when > 1.",
    "route_excess_kg": "The most that can have been rerouted above the usual run rate: the smaller of both legs' "
                       "kg excess, China's leg taken up to 3 periods earlier (the best lag). kg.",
    "route_excess_usd": "The smaller of both legs' value excess over the window (not lag-aligned). USD.",
    "reroute_ceiling_kg": "The most the hub can have passed on: the smaller of both legs' kg over the window "
                          "(China's up to 3 periods earlier). kg.",
    "reroute_ceiling_share": "reroute_ceiling_kg / the hub's kg to the US in the window: the share of it that "
                             "could be Chinese goods passed on. 0..1.",
    "china_value_cover": "China's exports to the hub in value above their run rate (up to 3 periods earlier, the "
                         "best lag) / the rise in the value of the hub's exports to the US: about 1 / pass-through "
                         "on a rerouting route, about 0 for a producer. NULL when the hub's exports did not rise "
                         "in value. In graded_score (whole from 0.5).",
    "three_leg_share_test": "The 'China wash' test: China's direct share of US imports falls, the hub's share "
                            "of China's exports rises, the hub's share of US imports rises (window vs prior, kg).",
    "three_leg_strength": "The weakest of the three share changes of three_leg_share_test; positive exactly when "
                          "it holds. -1..1.",
    "three_leg_excess_kg": "When the three-leg test holds: the smaller leg's kg above the route's earlier shares.",
    "co_movement": "The best correlation of the two legs over lags 0-3 (co_movement_lag0..3). -1..1.",
    "co_movement_lag": "The lag (periods) of co_movement.",
    "signal_persistence": "Consecutive periods, up to this one, in which both legs were unusual (robust z of 2 "
                          "or more, China's leg at some lag 0-3).",
    "kg_coverage": "Share of the route's trade (window and prior) whose weight is known or estimated. 0..1; "
                   "below 0.9 kg features are not trusted (no flag).",
    "co_robust_z": "The smaller of both legs' kg robust z (same window): high only when both legs rise.",
    "co_mean_z": "The smaller of both legs' kg mean z: rule B's z-score as a feature (not in graded_score).",
    "co_rise_z": "Both legs rising, as the quieter leg's rise against its own history: min(max(China->hub kg "
                 "robust z, China->hub USD mean z) up to 3 periods earlier (the best lag), hub->US kg robust z).",
    "hub_to_us_mean_z": "The hub's exports to the US against their own history, the louder of kg and value "
                        "(mean z), without the window's largest month (monthly data; a year's window is the year "
                        "itself): one lump is not a sustained rise. In graded_score.",
    "floor_multiple": "The route's excess in multiples of the mineral's volume floor, in kg, or in USD against the "
                      "value floor at the window's world price (never below what the kg floor is worth at it), "
                      "the larger (below 1: less than the smallest volume that counts as a route). In graded_score.",
    "volume_weight": "The route's excess as a share of the product's US imports in the window, in kg or value, "
                     "on a log scale: 0..1, 1 from 10 %. In graded_score.",
    "rule_flag": "The plain rule: the window beat the whole prior three years on both legs (kg).",
    "seeds_test_kg": "Both legs' kg spike ratios above 1 (the seeds' test in kilograms).",
    "seeds_test_usd": "Both legs' value spike ratios above 1 (the seeds' test in dollars).",
    "new_route": "The hub sent none of the product to the US over the prior periods.",
    # Scores
    # These quote the scoring parameters: a run words them with its own (models.evidence.scoring_comments);
    # the words here name the parameter instead.
    "evidence": "The product of graded_score's evidence factors (all but the forest's): the most graded_score "
                "can be. Below the run's min_evidence the forest does not score the row (the screen).",
    "anomaly_score": "The isolation forest's score in (0, 1]; 0.5 = as easy to isolate as a typical point. "
                     "Higher = more suspicious. NULL when the row was screened out (evidence below min_evidence).",
    "score_percentile": "Share of the forest's training route-periods (a seeded sample of train_sample_rows in "
                        "a larger group) scoring at or below this one. 0..1; NULL when screened out.",
    "score_threshold": "The flag threshold on route_score the run used (--min-route-score).",
    "route_score": "The ranking: √(graded_score × learned_score), graded_score on annual data. 0..1; NULL when "
                   "screened out (evidence below min_evidence).",
    "graded_score": "The forest's score moved by the direction evidence (models/evidence.py). 0..1; NULL below min_evidence.",
    "learned_score": "A classifier's probability (0..1) of a rerouting route (models/combiner.py; trained on "
                     "harness seeds 100-159 and 200-299). Monthly rows the forest scored; else NULL.",
    "direction_ok": "Tonnes in the transshipment direction, of trusted weight: route_excess_kg > 0 and "
                    "kg_coverage at least min_kg_coverage. Required for a flag.",
    "sustained": "No single period carries more than max_peak_share of the window's hub -> US kg (annual windows "
                 "pass). Weighed in graded_score, not required for a flag.",
    "flagged": "In the review queue: direction_ok and route_score at or above score_threshold.",
    "top_features": "Why, in words: what moved the forest's score most, then how route_score is made, factor "
                    "by factor, and the inputs that moved learned_score most (each reset to its usual value).",
    # Explanations
    "position": "1 = the feature whose reset lowers the score most.",
    "feature": "The feature (a column of features.route_features).",
    "words": "The feature in words.",
    "typical": "The route's typical value of the feature (its median over the route's scored periods).",
    "normal_low": "The model's normal range, low end (10th percentile of training).",
    "normal_high": "The model's normal range, high end (90th percentile of training).",
    "score_drop": "How much the anomaly score falls when this feature alone is reset to typical.",
    "set_score_drop": "How much the anomaly score falls when the whole set of top features is reset.",
    # Flagged list, history, changes
    "rank": "Position in the run's flagged list (1 = the highest peak route score).",
    "first_flagged_period": "The route's first flagged period.",
    "last_flagged_period": "The route's last flagged period.",
    "periods_flagged": "How many of the route's periods are flagged.",
    "peak_period": "The route's period with the highest route score.",
    "peak_route_score": "The route's highest route score (at peak_period).",
    "peak_score": "The forest's anomaly score at peak_period.",
    "evidence_kg": "The route's largest kg beyond its prior run rate over its flagged periods (the most "
                   "route_excess_kg; at a decision, as it stood then): what a dismissal is measured against.",
    "decision_evidence_kg": "The evidence (kg) the analyst saw when dismissing the route.",
    "rank_before": "Rank in the previous run's flagged list (NULL: not flagged then).",
    "rank_now": "Rank in this run's flagged list (NULL: not flagged now).",
    "peak_period_before": "Peak period in the previous run.",
    "peak_period_now": "Peak period in this run.",
    "score_before": "Peak route score in the previous run.",
    "score_now": "Peak route score in this run.",
    "change": "new, escalated (route score up by more than 10 %), steady, eased (down by more than 10 %), "
              "dropped, or first run.",
    # Review
    "decision_id": "The decision's number, in the order recorded. Key.",
    "decided_at": "When the decision was recorded (UTC).",
    "decided_by": "The analyst who recorded the latest decision.",
    "analyst": "Who recorded the decision.",
    "decision": "confirmed, dismissed or watching (the latest for the route).",
    "decision_note": "The analyst's note with the latest decision.",
    "reviewed_period": "The period the analyst looked at.",
    "was_flagged": "The route was on the flagged list when decided.",
    "rank_seen": "Its rank then.",
    "route_score_seen": "Its route score then.",
    "model_flags": "This run's model flags the route (compare with label).",
    # Models
    "created_at": "When the model was first fitted (UTC).",
    "last_fitted_at": "When it was last fitted or confirmed (UTC).",
    "code_version": "The code version (git commit) that wrote the row.",
    "training_first_period": "First period of the training rows.",
    "training_last_period": "Last period of the training rows.",
    "n_train": "Training route-periods.",
    "n_routes": "Routes in training.",
    "training_sha256": "SHA-256 of the rows the forest was fitted on (the group's training rows, or its seeded "
                       "sample of 50,000): the same rows fitted the same way give the same model_id.",
    "card": "The model card (JSON): features, parameters, library versions, counts.",
    "artifact": "The fitted model, as plain arrays (artifact_format).",
    "psi": "Population stability index of the feature between training and the new rows (above 0.25: drifted).",
    "new_rows": "New route-periods compared.",
    "first_new_period": "First new period.",
    "last_new_period": "Last new period.",
    "drifted": "psi above the run's drift threshold (the model is refitted).",
    # Runs
    "started_at": "When the run started (UTC).",
    "finished_at": "When it ended (UTC).",
    "status": "running, succeeded or failed.",
    "data_dir": "The folder of input files.",
    "input_files": "Every input file with its SHA-256 and rows read, loaded and set aside (JSON).",
    "parameters": "The run's settings: features, scoring, sources (JSON).",
    "layer_counts": "Rows per layer after the run (JSON).",
    "build": "How the warehouse was built: full or incremental, why, seconds per stage, coverage (JSON).",
    # Build bookkeeping
    "layer": "The layer rebuilt (marts, features, scores).",
    "key": "The state entry's name.",
}

# Names whose meaning depends on the relation (relation, column) -> text; checked before NAMES.
BY_RELATION: dict[tuple[str, str], str] = {
    ("build.dirty_routes", "first_period"): "From this period on, the route's legs changed: its features and "
                                            "scores are recomputed from here (from the route's first period when "
                                            "the change made its hub start or stop sending the US the product: "
                                            "its features are then computed whole, or dropped).",
    ("build.dirty_routes", "change"): "new (a row of the mart appeared or changed) or gone (it disappeared).",
    ("build.rebuilt_periods", "period"): "A period the last build recomputed.",
    ("build.state", "value"): "The state entry's value (JSON): e.g. the code fingerprint of the last build.",
    ("main.held_back_routes", "reason"): "Why it is held back: dismissed, and its evidence has not grown by more "
                                         "than the regrowth share since.",
    ("main.flag_changes", "reason"): "For a dropped route: held back by a dismissal, or no longer flagged by the "
                                     "model.",
    ("main.review_labels", "label"): "true for confirmed, false for dismissed.",
    ("main.review_labels", "decision"): "confirmed or dismissed.",
    ("main.watch_list", "decision"): "confirmed or watching.",
    ("main.watch_list", "period"): "A period from the reviewed one on.",
    ("ref.hs_concordance", "source"): "Where the correspondence comes from.",
    ("ref.hs_concordance", "note"): "Remarks on the correspondence.",
    ("models.drift", "feature"): "The model input compared.",
    ("review.decisions", "decision"): "confirmed, dismissed or watching.",
    ("review.decisions", "note"): "The analyst's note (required).",
    ("models.registry", "run_id"): "The run that fitted the model.",
    ("models.registry", "mineral"): "The mineral series the model is fitted for (one model per mineral and "
                                    "frequency).",
    ("raw.fx_rates", "period"): "The month the rate applies to.",
    ("raw.loads", "notes"): "What the loader noticed about the file (quirks fixed, totals skipped).",
}


def column_comment(relation: str, column: str) -> str | None:
    """The comment for `column` of `relation` (schema.name), or None when the glossary does not know it."""
    if (relation, column) in BY_RELATION:
        return BY_RELATION[(relation, column)]
    if column in NAMES:
        return NAMES[column]
    for pattern, template in PATTERNS:
        found = re.match(pattern, column)
        if found:
            parts = found.groupdict()
            words = {
                "leg": LEGS.get(parts.get("leg", ""), ""),
                "unit": UNITS.get(parts.get("unit", ""), _UNIT_WORDS.get(parts.get("unit", ""), "")),
                "share": _SHARES.get(parts.get("share", ""), ""),
                "when": _WHEN.get(parts.get("when", ""), ""),
                "pair": _PAIRS.get(parts.get("pair", ""), ""),
                "lag": parts.get("lag", ""),
            }
            text = template.format(**words)
            return text[0].upper() + text[1:]
    return None
