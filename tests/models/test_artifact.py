"""Models stored as plain data: the same scorer back, bit for bit; and a warehouse received from elsewhere,
with a crafted model in it, never runs code or crashes the process (it is refused, and the group refitted)."""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import zlib
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models import artifact
from tests.helpers import examples
from models.iforest import MODEL_FEATURES, RouteScorer
from flows.stages.registry import latest
from models.registry import choose_models


@pytest.fixture(scope="module")
def scorer() -> RouteScorer:
    rng = np.random.default_rng(3)
    frame = pl.DataFrame({f.column: rng.gamma(1.5, size=3000) for f in MODEL_FEATURES})
    return RouteScorer(n_estimators=40, random_state=5).fit(frame)


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    rng = np.random.default_rng(4)
    return pl.DataFrame({f.column: rng.gamma(1.5, size=500) * rng.choice([1, 20], size=500) for f in MODEL_FEATURES})


def test_a_stored_scorer_scores_explains_and_drifts_as_the_fitted_one(scorer, frame):
    back = artifact.loads(artifact.dumps(scorer))
    assert np.array_equal(back.anomaly_score(frame), scorer.anomaly_score(frame))
    assert back.threshold_for(0.98) == scorer.threshold_for(0.98)
    assert back.features_ == scorer.features_
    assert back.explain(frame.head(20), frame.tail(20)).equals(scorer.explain(frame.head(20), frame.tail(20)))
    assert back.drift(frame).equals(scorer.drift(frame))


def _parts(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    size = int.from_bytes(data[len(artifact.MAGIC):len(artifact.MAGIC) + 8], "little")
    start = len(artifact.MAGIC) + 8
    doc = json.loads(data[start:start + size])
    with np.load(io.BytesIO(data[start + size:]), allow_pickle=False) as npz:
        return doc, {k: npz[k].copy() for k in npz.files}


def _joined(doc: dict, arrays: dict[str, np.ndarray]) -> bytes:
    text = json.dumps(doc).encode()
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return artifact.MAGIC + len(text).to_bytes(8, "little") + text + buffer.getvalue()


def _nodes_pack(arrays: dict[str, np.ndarray]) -> str:
    return next(k for k, a in arrays.items() if a.dtype.names and "left_child" in a.dtype.names)


def test_tampered_artifacts_are_refused_with_a_reason(scorer):
    good = artifact.dumps(scorer)
    doc, arrays = _parts(good)
    text = json.dumps(doc)
    cases = {
        "not a model": b"hello",
        "a pickle": zlib.compress(pickle.dumps(scorer)),
        "cut short": good[: len(good) // 2],
        "a class it may not build": _joined(json.loads(text.replace("models.iforest.ModelFeature", "os.system", 1)),
                                            arrays),
        "another format": _joined({**doc, "format": "pickle"}, arrays),
    }
    pointing_out = {k: a.copy() for k, a in arrays.items()}
    pointing_out[_nodes_pack(arrays)]["left_child"][0] = 10**9  # a child far outside the tree
    cases["a node outside its tree"] = _joined(doc, pointing_out)
    looping = {k: a.copy() for k, a in arrays.items()}
    looping[_nodes_pack(arrays)]["right_child"][0] = 0  # the root its own child: a walk would never end
    cases["a node pointing back"] = _joined(doc, looping)
    bad_feature = {k: a.copy() for k, a in arrays.items()}
    inner = np.flatnonzero(bad_feature[_nodes_pack(arrays)]["left_child"] >= 0)[0]
    bad_feature[_nodes_pack(arrays)]["feature"][inner] = 99
    cases["a split on an input it does not have"] = _joined(doc, bad_feature)
    objects = io.BytesIO()
    np.savez(objects, p0=np.array([os.system], dtype=object), allow_pickle=True)
    cases["an array of objects"] = good[: len(artifact.MAGIC) + 8 + len(json.dumps(doc).encode())] + objects.getvalue()
    for name, data in cases.items():
        with pytest.raises(artifact.ArtifactError):
            artifact.loads(data)
        assert name  # each case refused by name above; pytest shows which on failure


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.tuples(st.integers(min_value=0), st.integers(-(2**40), 2**40)), min_size=1, max_size=4))
def test_any_node_array_a_stranger_writes_loads_and_scores_or_is_refused(scorer, frame, picks):
    # Whatever numbers a crafted warehouse puts in a tree's nodes, the process neither crashes nor hangs.
    doc, arrays = _parts(artifact.dumps(scorer))
    pack = _nodes_pack(arrays)
    nodes = arrays[pack]
    fields = ("left_child", "right_child", "feature", "threshold")
    for i, (where, value) in enumerate(picks):
        nodes[fields[i % len(fields)]][where % len(nodes)] = value
    try:
        loaded = artifact.loads(_joined(doc, arrays))
    except artifact.ArtifactError:
        return
    assert np.isfinite(loaded.anomaly_score(frame)).all()


class _Payload:
    """What a crafted pickle in a received warehouse would do: run a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_received_warehouse_with_a_crafted_pickle_runs_no_code(scored_warehouse, tmp_path):
    marker = tmp_path / "pwned"
    received = tmp_path / "received.duckdb"
    shutil.copy(scored_warehouse[0], received)
    con = duckdb.connect(str(received))
    try:
        # The model a stranger planted: the latest one for antimony, stored the way earlier versions did.
        con.execute("""INSERT INTO models.registry (model_id, frequency, mineral, created_at, run_id, n_train,
                           training_first_period, training_last_period, n_routes, training_sha256, card, artifact,
                           last_fitted_at, artifact_format)
                       SELECT 'M-antimony-crafted', 'M', 'antimony', now(), 'elsewhere', n_train,
                              training_first_period, training_last_period, n_routes, training_sha256, card, ?,
                              now() + INTERVAL 1 DAY, NULL
                       FROM models.registry WHERE mineral = 'antimony' LIMIT 1""",
                    [zlib.compress(pickle.dumps(_Payload(marker)))])
        refused: dict = {}
        models = latest(con, refused)
        assert ("M", "antimony") not in models and ("M", "gallium_germanium") in models
        assert "M-antimony-crafted not loaded" in refused[("M", "antimony")]
        assert "pickle" in refused[("M", "antimony")]
        rows = con.sql("SELECT * FROM features.route_features WHERE mineral = 'antimony' AND has_history").pl()
        _, reasons, _ = choose_models(rows, models, "auto", 0.25, refused=refused)
        assert reasons[("M", "antimony")].startswith("fitted anew: registered model M-antimony-crafted not loaded")
        with pytest.raises(LookupError, match="not loaded"):
            choose_models(rows, models, "reuse", 0.25, refused=refused)
    finally:
        con.close()
    assert not marker.exists()
