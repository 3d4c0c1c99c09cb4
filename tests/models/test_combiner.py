"""The learned combiner (models/combiner.py): stored as plain data, read back to the bit, every hostile document
refused with a reason, explanations that are the classifier's own."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier

from models import combiner as cb


def _frame(n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(cb.COLUMNS)))
    x[rng.random(size=x.shape) < 0.05] = np.nan  # unknowns go down the side training taught
    return pl.DataFrame(x, schema=list(cb.COLUMNS)).with_columns(frequency=pl.lit("M"))


@pytest.fixture(scope="module")
def fitted():
    train = _frame(3_000, 0)
    y = (np.nan_to_num(train["hub_to_us_usd_mean_z"].to_numpy()) + np.nan_to_num(train["co_rise_z"].to_numpy()) > 1.5)
    model = HistGradientBoostingClassifier(max_iter=30, max_leaf_nodes=7, random_state=0).fit(cb.inputs(train), y)
    doc = cb.document(model, {c: 0.0 for c in cb.COLUMNS}, {"rows": train.height})
    return model, doc


def test_a_stored_combiner_scores_as_the_fitted_classifier_to_the_bit(fitted):
    model, doc = fitted
    loaded = cb.loads(cb.dumps(doc), "test")
    rows = _frame(2_000, 1)
    assert np.array_equal(loaded.probability(rows), model.predict_proba(cb.inputs(rows))[:, 1])
    # The text is diffable: one line per tree.
    assert cb.dumps(doc).count("\n") >= len(doc["trees"])


def test_the_shipped_combiner_loads_and_says_how_it_was_made():
    shipped = cb.load()
    doc = json.loads(cb.PATH.read_text(encoding="utf-8"))
    assert doc["columns"] == list(cb.COLUMNS) and len(shipped.trees) == doc["training"]["rounds"] == 300
    training = doc["training"]
    assert training["seeds"] == "100-159, 200-299" and training["rows"] > 400_000 and 0 < training["planted_rows"] < 10_000
    assert training["trained_by"] == "python -m flows.harness.train_combiner"
    assert shipped.model_id.startswith("combiner-") and len(shipped.sha256) == 64
    # It scores what a run gives it: a quiet row low, a rerouting row high.
    quiet = pl.DataFrame({c: [v] for c, v in shipped.usual.items()}).with_columns(frequency=pl.lit("M"))
    loud = quiet.with_columns(hub_to_us_usd_mean_z=pl.lit(40.0), hub_to_us_mean_z=pl.lit(40.0), co_rise_z=pl.lit(4.0),
                              china_value_cover=pl.lit(1.0), floor_multiple=pl.lit(5.0), volume_weight=pl.lit(0.8),
                              anomaly_score=pl.lit(0.75))
    assert shipped.probability(quiet)[0] < 0.05 < 0.5 < shipped.probability(loud)[0]


def test_training_is_reproducible():
    """The same rows give the same stored combiner, byte for byte."""
    from flows.harness.train_combiner import CLASSIFIER, fit

    rows = _frame(2_000, 2).with_columns(y=pl.col("co_rise_z").fill_null(0.0) > 1.0)
    small = {**CLASSIFIER, "max_iter": 10}
    usual = {c: 0.0 for c in cb.COLUMNS}
    first, second = (cb.dumps(cb.document(fit(rows, small), usual, {})) for _ in range(2))
    assert first == second


def _broken(doc: dict, change) -> str:
    copy = json.loads(json.dumps(doc))
    change(copy)
    return json.dumps(copy)


@pytest.mark.parametrize("change, words", [
    (lambda d: d.update(format="pickle"), "not a transship-combiner-1"),
    (lambda d: d["columns"].reverse(), "other columns"),
    (lambda d: d.update(baseline=float("nan")), "baseline"),
    (lambda d: d["usual"].pop("co_rise_z"), "usual"),
    (lambda d: d.update(trees=[]), "trees"),
    (lambda d: d["trees"][0]["left"].__setitem__(0, 0), "before itself"),  # a loop back to the root
    (lambda d: d["trees"][0]["right"].__setitem__(0, 10_000), "outside the tree"),
    (lambda d: d["trees"][0]["feature"].__setitem__(0, 99), "outside the tree or the input"),
    (lambda d: d["trees"][0]["feature"].__setitem__(0, True), "whole numbers"),
    (lambda d: d["trees"][0]["threshold"].__setitem__(0, float("inf")), "not finite"),
    (lambda d: d["trees"][0]["value"].__setitem__(1, float("nan")), "not finite"),
    (lambda d: d["trees"][0]["value"].__setitem__(1, "1; import os"), "other than a number"),
    (lambda d: d["trees"][0]["leaf"].pop(), "one length"),
    (lambda d: d["trees"][0].update(code="print(1)"), "expected the lists"),
])
def test_a_hostile_combiner_is_refused_with_a_reason(fitted, change, words):
    with pytest.raises(cb.CombinerError, match=words):
        cb.loads(_broken(fitted[1], change), "test")


def test_a_combiner_that_is_not_json_or_too_large_is_refused(tmp_path):
    with pytest.raises(cb.CombinerError, match="not a JSON document"):
        cb.loads(b"\x80\x04\x95 pickled", "test")
    with pytest.raises(cb.CombinerError, match="not a JSON document"):
        cb.loads("[" * 100_000, "test")
    with pytest.raises(cb.CombinerError, match="more than a combiner holds"):
        cb.loads(b" " * (cb.MAX_BYTES + 1), "test")
    with pytest.raises(cb.CombinerError, match="cannot be read"):
        cb.load(str(tmp_path / "missing.json"))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.integers(0, 29), key=st.sampled_from(cb.NODE_KEYS), node=st.integers(0, 12),
       value=st.one_of(st.integers(-(2 ** 40), 2 ** 40), st.floats(allow_nan=True, allow_infinity=True),
                       st.booleans(), st.none(), st.text(max_size=3)))
def test_any_one_node_changed_loads_and_scores_or_is_refused(fitted, tree, key, node, value):
    """Whatever one node holds, loading either refuses it or gives a model whose probabilities are in [0, 1]:
    scikit-learn's compiled walk never sees an unchecked node."""
    def change(d):
        nodes = d["trees"][tree][key]
        nodes[node % len(nodes)] = value

    try:
        text = _broken(fitted[1], change)
    except ValueError:  # JSON cannot write it
        return
    try:
        loaded = cb.loads(text, "fuzz")
    except cb.CombinerError:
        return
    p = loaded.probability(_frame(50, 3))
    assert ((p >= 0) & (p <= 1)).all()


def test_drivers_are_what_the_classifier_scores_with_each_column_reset(fitted):
    model, doc = fitted
    loaded = cb.loads(cb.dumps(doc), "test")
    rows = _frame(20, 4)
    drivers = loaded.drivers(rows, top=3)
    assert drivers.group_by("row").len()["len"].max() <= 3
    now = loaded.probability(rows)
    for r in drivers.iter_rows(named=True):
        reset = rows[r["row"]].with_columns(pl.lit(r["usual"]).alias(r["column"]))
        assert loaded.probability(reset)[0] == pytest.approx(r["at_usual"], abs=1e-12)
        assert r["drop"] == pytest.approx(now[r["row"]] - r["at_usual"], abs=1e-12) and r["drop"] > 0
    # Within a row, the strongest first; no column whose reset does not lower the score.
    assert drivers.group_by("row", maintain_order=True).agg(pl.col("drop").is_sorted(descending=True).alias("s"))["s"].all()


def test_learned_scores_only_where_the_forest_scored_a_monthly_route_period(fitted):
    loaded = cb.loads(cb.dumps(fitted[1]), "test")
    rows = _frame(4, 5).with_columns(frequency=pl.Series(["M", "M", "A", "M"]),
                                     anomaly_score=pl.Series([0.6, None, 0.6, 0.7]))
    learned = cb.learned_scores(rows, loaded)
    assert learned.is_null().to_list() == [False, True, True, False]
    assert learned[0] == loaded.probability(rows[0])[0] and learned[3] == loaded.probability(rows[3])[0]


def test_training_rows_are_labelled_planted_from_a_route_s_start_to_four_months_after_its_end(tmp_path):
    """labelled: the route-periods the forest scored in the evaluated months, planted from the planted route's
    first month to LABEL_TAIL (4 months) after its last; the usual values are the unplanted rows' medians."""
    from datetime import date

    from flows.harness.train_combiner import labelled, usual_values

    months = [date(2024, m, 1) for m in range(1, 13)]
    scores = pl.DataFrame({"hs_code": ["811292"] * 12 + ["282580"] * 12, "hub_iso3": ["VNM"] * 12 + ["THA"] * 12,
                           "period": months * 2, "graded_score": [0.1] * 24,
                           **{c: [1.0] * 24 for c in cb.COLUMNS}}).with_columns(
        anomaly_score=pl.when(pl.int_range(pl.len()) == 23).then(None).otherwise(0.6),  # THA 2024-12 screened out
        co_rise_z=pl.when(pl.col("hub_iso3") == "VNM").then(5.0).otherwise(-1.0))
    scores.write_parquet(tmp_path / "1.parquet")
    pl.DataFrame({"kind": ["planted", "producer_surge"], "hs_code": ["811292", "282580"], "hub_iso3": ["VNM", "THA"],
                  "start": ["2024-03", "2024-01"], "end": ["2024-05", "2024-12"]}).write_parquet(tmp_path / "1.truth.parquet")
    rows, planted = labelled(1, tmp_path)
    assert planted.select("hs_code", "hub_iso3").rows() == [("811292", "VNM")]
    assert rows.height == 23  # the screened-out row is not a training row
    vnm = rows.filter(pl.col("hub_iso3") == "VNM").sort("period")
    assert [p.month for p in vnm.filter("y")["period"]] == [3, 4, 5, 6, 7, 8, 9]  # 2024-03 .. 2024-05 + 4 months
    assert not rows.filter(pl.col("hub_iso3") == "THA")["y"].any()  # a look-alike is not planted
    usual = usual_values(rows)
    assert usual["co_rise_z"] == pytest.approx(float(rows.filter(~pl.col("y"))["co_rise_z"].median()))
    assert set(usual) == set(cb.COLUMNS)
