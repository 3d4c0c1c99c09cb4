"""The learned part of route_score: a gradient-boosted classifier over 24 columns a run stores, trained on the
project's own harness worlds (flows/harness/train_combiner.py), shipped as plain data (models/combiner.json),
read back with every number checked, never unpickled.

    route_score = √(graded_score × learned_score)

graded_score is the forest's score moved by the direction evidence (models/evidence.py: the designed
formula); learned_score is the classifier's probability that a route-period belongs to a planted rerouting
route, as the harness plants them (from its first month to four months after its last). The classifier reads
the evidence the formula leaves out or weighs by hand: the hub's exports to the US in value against their own
history, China's extra shipments covering them, unit values against the route's own, how long both legs
have moved together. On its own it learns the generator's habits as well as the routes (it is the better
ranking on held-out harness seeds and the worse on worlds from other generators); the geometric mean keeps
both: a route ranks high only when the designed evidence and the learned one agree (README, "The score").

Monthly data only: the harness's worlds are monthly, so annual route-periods (CEPII BACI) keep
route_score = graded_score and learned_score NULL.

The stored document (FORMAT): the columns, in order; the baseline (log-odds before any tree); per tree its
nodes as parallel lists (feature, threshold, missing_left, left, right, value, leaf); `usual`, each column's
median over the training rows that were not planted (what an explanation resets a column to); `training`,
how it was made. Loading checks the size, the format, that the columns are this code's, every node (children
after their parent and inside the tree, features inside the input, thresholds and values finite) and that
the loaded model scores a row, before scikit-learn's compiled tree walk ever sees the nodes. That walk is
scikit-learn's own (its TreePredictor, a private class of 1.9, the version the lock pins):
tests/models/test_combiner.py checks, on every install, that a stored model scores as the fitted one does.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy.special import expit

FORMAT = "transship-combiner-1"
PATH = Path(__file__).with_name("combiner.json")
# The columns the classifier reads, all stored by every run (features.route_features, main.route_scores).
COLUMNS = ("anomaly_score", "co_rise_z", "hub_to_us_mean_z", "hub_to_us_kg_mean_z", "hub_to_us_usd_mean_z",
           "cn_to_hub_kg_mean_z", "cn_to_hub_usd_mean_z", "cn_to_hub_kg_robust_z", "hub_to_us_kg_robust_z",
           "us_from_cn_kg_robust_z", "floor_multiple", "volume_weight", "china_value_cover", "hub_to_us_peak_share",
           "pass_through_kg", "co_movement", "signal_persistence", "world_unit_value_change", "prior_periods",
           "unit_value_vs_own_history", "three_leg_strength", "co_spike_ratio_kg", "route_excess_kg",
           "route_excess_usd")
# Inputs are clipped to this magnitude: a ratio over a zero prior can be any size, and the trees split far
# inside it.
CLIP = 1e6
MAX_BYTES = 8_000_000
MAX_TREES = 2_000
MAX_NODES = 4_095
NODE_KEYS = ("feature", "threshold", "missing_left", "left", "right", "value", "leaf")


class CombinerError(ValueError):
    """The stored combiner cannot be used; the message says why and what to do."""


def values(frame: pl.DataFrame) -> np.ndarray:
    """The classifier's columns as the rows hold them (rows × COLUMNS), float64, unknown (null or NaN) as NaN."""
    return frame.select([pl.col(c).cast(pl.Float64).fill_nan(None) for c in COLUMNS]).to_numpy().astype(np.float64)


def inputs(frame: pl.DataFrame, held: np.ndarray | None = None) -> np.ndarray:
    """The classifier's inputs: `frame`'s values (or `held`, values() already read) clipped to ±CLIP, unknown
    as NaN: the trees send an unknown value down the side training taught them."""
    return np.ascontiguousarray(np.clip(values(frame) if held is None else held, -CLIP, CLIP))


@dataclass(frozen=True)
class Combiner:
    """A loaded, checked classifier (load): probability(frame) per row."""
    baseline: float
    trees: tuple[Any, ...]  # sklearn's TreePredictor, built from checked nodes
    usual: dict[str, float]
    training: dict = field(default_factory=dict)
    sha256: str = ""

    @property
    def model_id(self) -> str:
        return f"combiner-{self.sha256[:12]}"

    def probability_of(self, x: np.ndarray) -> np.ndarray:
        """The probability for input rows `x` (rows × COLUMNS, as inputs() gives them). Summed in the order
        scikit-learn sums it (baseline, then the trees in order), so it is the fitted model's to the bit."""
        from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

        raw = np.full(x.shape[0], self.baseline, dtype=np.float64)
        known = np.zeros((0, 8), dtype=np.uint32)
        index = np.zeros(len(COLUMNS), dtype=np.uint32)
        threads = _openmp_effective_n_threads()
        for tree in self.trees:
            raw += tree.predict(x, known, index, threads)
        return expit(raw)

    def probability(self, frame: pl.DataFrame) -> np.ndarray:
        return self.probability_of(inputs(frame)) if frame.height else np.zeros(0)

    def drivers(self, frame: pl.DataFrame, top: int = 3) -> pl.DataFrame:
        """Per row of `frame` (row 0, 1, ...): the `top` columns whose reset to their usual value (the median
        of the training rows not planted) lowers the probability most, each with its value, the usual value
        and the probability with that column alone reset. Columns whose reset does not lower it are left
        out. Every variant is scored by the classifier itself: the drivers are what moved this row's score.
        `value` is the row's own (the classifier reads it clipped to ±CLIP)."""
        schema = {"row": pl.Int64, "column": pl.String, "value": pl.Float64, "usual": pl.Float64,
                  "at_usual": pl.Float64, "drop": pl.Float64}
        if not frame.height:
            return pl.DataFrame(schema=schema)
        held = values(frame)
        x = inputs(frame, held)
        n, d = x.shape
        usual = np.array([self.usual[c] for c in COLUMNS])
        variants = np.repeat(x, d, axis=0)  # row i's variant j at i*d + j: column j reset
        variants[np.arange(n * d), np.tile(np.arange(d), n)] = np.tile(usual, n)
        now = self.probability_of(x)
        reset = self.probability_of(variants).reshape(n, d)
        out = pl.DataFrame({"row": np.repeat(np.arange(n, dtype=np.int64), d), "column": np.tile(np.array(COLUMNS), n),
                            "value": held.reshape(-1), "usual": np.tile(usual, n), "at_usual": reset.reshape(-1),
                            "drop": (now[:, None] - reset).reshape(-1)}, schema=schema)
        return (out.filter(pl.col("drop") > 1e-9).sort(["row", "drop"], descending=[False, True])
                .group_by("row", maintain_order=True).head(top))


# ---------------------------------------------------------------- writing
def document(model: Any, usual: dict[str, float], training: dict) -> dict:
    """A fitted HistGradientBoostingClassifier (numeric inputs, binary) as the stored document."""
    if getattr(model, "n_trees_per_iteration_", None) != 1 or len(getattr(model, "classes_", ())) != 2:
        raise TypeError("only a binary classifier can be stored")
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise TypeError("categorical splits cannot be stored")
        trees.append({"feature": nodes["feature_idx"].tolist(), "threshold": nodes["num_threshold"].tolist(),
                      "missing_left": nodes["missing_go_to_left"].astype(bool).tolist(),
                      "left": nodes["left"].tolist(), "right": nodes["right"].tolist(),
                      "value": nodes["value"].tolist(), "leaf": nodes["is_leaf"].astype(bool).tolist()})
    return {"format": FORMAT, "columns": list(COLUMNS), "baseline": float(model._baseline_prediction.reshape(-1)[0]),
            "usual": {c: float(usual[c]) for c in COLUMNS}, "training": training, "trees": trees}


def dumps(doc: dict) -> str:
    """The document as text: one line per tree, so that a retrained model's change reads in a diff."""
    head = {k: v for k, v in doc.items() if k != "trees"}
    lines = ",\n".join("  " + json.dumps(t, separators=(",", ":")) for t in doc["trees"])
    return json.dumps(head, indent=1)[:-2] + ',\n "trees": [\n' + lines + "\n ]\n}\n"


# ---------------------------------------------------------------- reading
def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CombinerError(f"{what} is {value!r}: not a finite number")
    return float(value)


def _nodes(tree: Any, i: int) -> np.ndarray:
    """Tree `i`'s nodes as scikit-learn's predictor records, after every check (module docstring)."""
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    if not isinstance(tree, dict) or set(tree) != set(NODE_KEYS):
        raise CombinerError(f"tree {i}: expected the lists {', '.join(NODE_KEYS)}")
    lists = [tree[k] for k in NODE_KEYS]
    n = len(lists[0]) if isinstance(lists[0], list) else -1
    if not 1 <= n <= MAX_NODES or any(not isinstance(v, list) or len(v) != n for v in lists):
        raise CombinerError(f"tree {i}: its lists must be of one length, 1 to {MAX_NODES}")
    try:
        feature, left, right = (np.array(tree[k], dtype=np.int64) for k in ("feature", "left", "right"))
        threshold, value = (np.array(tree[k], dtype=np.float64) for k in ("threshold", "value"))
        missing_left, leaf = (np.array(tree[k], dtype=np.bool_) for k in ("missing_left", "leaf"))
    except (TypeError, ValueError, OverflowError) as exc:
        raise CombinerError(f"tree {i}: a node holds something other than a number ({exc})") from None
    if any(not all(isinstance(v, bool) for v in tree[k]) for k in ("missing_left", "leaf")) or any(
            any(isinstance(v, bool) or not isinstance(v, int) for v in tree[k]) for k in ("feature", "left", "right")):
        raise CombinerError(f"tree {i}: feature, left and right must be whole numbers, missing_left and leaf true/false")
    split = ~leaf
    at = np.arange(n)
    if not np.isfinite(value).all():
        raise CombinerError(f"tree {i}: a value is not finite")
    if split.any() and not (np.isfinite(threshold[split]).all()
                            and ((feature[split] >= 0) & (feature[split] < len(COLUMNS))).all()
                            and ((left[split] > at[split]) & (left[split] < n)).all()
                            and ((right[split] > at[split]) & (right[split] < n)).all()):
        raise CombinerError(f"tree {i}: a split points outside the tree or the input, or before itself, or has "
                            "a threshold that is not finite")
    if leaf[0] and n > 1 or not leaf.any():
        raise CombinerError(f"tree {i}: its root and leaves do not make a tree")
    nodes = np.zeros(n, dtype=PREDICTOR_RECORD_DTYPE)
    nodes["value"], nodes["is_leaf"], nodes["missing_go_to_left"] = value, leaf, missing_left
    nodes["feature_idx"] = np.where(split, feature, 0)
    nodes["num_threshold"] = np.where(split, threshold, 0.0)
    nodes["left"], nodes["right"] = np.where(split, left, 0), np.where(split, right, 0)
    return nodes


def loads(text: bytes | str, source: str = "the combiner") -> Combiner:
    """A Combiner from the stored document, or CombinerError. Never unpickles, never imports by name."""
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    data = text.encode() if isinstance(text, str) else text
    if len(data) > MAX_BYTES:
        raise CombinerError(f"{source}: {len(data):,} bytes, more than a combiner holds ({MAX_BYTES:,})")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise CombinerError(f"{source}: not a JSON document ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CombinerError(f"{source}: not a {FORMAT} document")
    if doc.get("columns") != list(COLUMNS):
        raise CombinerError(f"{source}: trained on other columns than this code reads; train it again "
                            "(python -m flows.harness.train_combiner)")
    baseline = _number(doc.get("baseline"), f"{source}: baseline")
    usual = doc.get("usual")
    if not isinstance(usual, dict) or set(usual) != set(COLUMNS):
        raise CombinerError(f"{source}: `usual` must give every column's usual value")
    usual = {c: _number(usual[c], f"{source}: usual {c}") for c in COLUMNS}
    trees = doc.get("trees")
    if not isinstance(trees, list) or not 1 <= len(trees) <= MAX_TREES:
        raise CombinerError(f"{source}: `trees` must be a list of 1 to {MAX_TREES} trees")
    empty = np.zeros((0, 8), dtype=np.uint32)
    try:
        predictors = tuple(TreePredictor(_nodes(t, i), empty, empty) for i, t in enumerate(trees))
    except CombinerError as exc:
        raise CombinerError(f"{source}: {exc}") from None
    training = doc.get("training") if isinstance(doc.get("training"), dict) else {}
    combiner = Combiner(baseline, predictors, usual, training, hashlib.sha256(data).hexdigest())
    check = combiner.probability_of(np.zeros((1, len(COLUMNS))))
    if not (check.shape == (1,) and 0.0 <= check[0] <= 1.0):
        raise CombinerError(f"{source}: does not score a row")
    return combiner


@lru_cache(maxsize=4)
def load(path: str = str(PATH)) -> Combiner:
    """The combiner at `path` (the shipped one by default), read once per process."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CombinerError(f"{path}: cannot be read ({exc.strerror}); reinstall transship, or train it "
                            "(python -m flows.harness.train_combiner)") from None
    return loads(data, path)


def route_score_from(graded: pl.Expr, learned: pl.Expr) -> pl.Expr:
    """route_score from its halves: √(graded × learned), graded itself where there is no learned score."""
    return pl.when(learned.is_null()).then(graded).otherwise((graded * learned).sqrt())


def learned_scores(frame: pl.DataFrame, combiner: Combiner) -> pl.Series:
    """learned_score per row: the probability on the monthly route-periods the forest scored (anomaly_score
    known), NULL elsewhere (screened out, or annual)."""
    mask = (pl.col("anomaly_score").is_not_null() & (pl.col("frequency") == "M")).fill_null(False)
    keep = frame.select(mask).to_series()
    out = np.full(frame.height, np.nan)
    if keep.any():
        out[keep.to_numpy()] = combiner.probability(frame.filter(keep))
    return pl.Series("learned_score", out).fill_nan(None)
