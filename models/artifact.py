"""A fitted RouteScorer stored as plain data, never as a pickle: a warehouse received from elsewhere can hold a
crafted model, and loading it must not run code or crash the process.

The artifact is a JSON document for the scorer's structure and parameters followed by its numbers as NumPy
arrays (an .npz read with allow_pickle=False). Loading builds only the classes in ALLOWED, from their
stored attributes; every tree's node arrays are checked before scikit-learn's compiled code walks them
(children inside the tree and after their parent, features inside the input, finite thresholds), and the
loaded scorer must score a row. Anything else is an ArtifactError naming what is wrong.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np
import polars as pl
from sklearn.ensemble import IsolationForest
from sklearn.tree import ExtraTreeRegressor
from sklearn.tree._tree import NODE_DTYPE, TREE_LEAF, TREE_UNDEFINED, Tree

from models.iforest import ModelFeature, RouteScorer

FORMAT = "transship-arrays-1"
MAGIC = b"transship model\n"
ALLOWED: dict[str, type] = {
    f"{cls.__module__}.{cls.__qualname__}": cls
    for cls in (RouteScorer, ModelFeature, IsolationForest, ExtraTreeRegressor)
}
_TREE = f"{Tree.__module__}.{Tree.__qualname__}"


class ArtifactError(ValueError):
    """A stored model cannot be loaded safely; the message says why."""


# ---------------------------------------------------------------- writing
def dumps(scorer: RouteScorer) -> bytes:
    """The fitted scorer as bytes: MAGIC, the JSON document's length and text, then the arrays (.npz). The
    arrays of one type are packed end to end in one member (a forest has ~1,500 small arrays; an .npz
    member each made loading ten times slower), each array in the document as (pack, start, length, shape)."""
    arrays: dict[str, np.ndarray] = {}
    root = _encode(scorer, arrays)
    packs: dict[np.dtype, list[np.ndarray]] = {}
    ends: dict[np.dtype, int] = {}  # each pack's length so far (summing it again per array was quadratic)
    places: dict[str, list] = {}
    for key, array in arrays.items():
        pack = packs.setdefault(array.dtype, [])
        start = ends.get(array.dtype, 0)
        places[key] = [f"p{list(packs).index(array.dtype)}", start, int(array.size), list(array.shape)]
        pack.append(array.reshape(-1))
        ends[array.dtype] = start + int(array.size)
    doc = json.dumps({"format": FORMAT, "root": _placed(root, places)}, separators=(",", ":")).encode()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False,
                        **{f"p{i}": np.concatenate(pack) for i, pack in enumerate(packs.values())})
    return MAGIC + len(doc).to_bytes(8, "little") + doc + buffer.getvalue()


def _placed(value: Any, places: dict[str, list]) -> Any:
    """The encoded document with each array's key replaced by its place in the packs."""
    if isinstance(value, dict):
        if set(value) == {"array"}:
            return {"array": places[value["array"]]}
        return {k: _placed(v, places) for k, v in value.items()}
    if isinstance(value, list):
        return [_placed(v, places) for v in value]
    return value


def _encode(value: Any, arrays: dict[str, np.ndarray]) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.generic):
        return {"np": value.dtype.str, "v": value.item()}
    if isinstance(value, int | float):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError("an array of Python objects cannot be stored without pickle")
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"array": key}
    if isinstance(value, list | tuple):
        return {"list" if isinstance(value, list) else "tuple": [_encode(v, arrays) for v in value]}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("only text keys can be stored")
        return {"dict": {k: _encode(v, arrays) for k, v in value.items()}}
    if isinstance(value, Tree):
        _, (n_features, n_classes, n_outputs), state = value.__reduce__()
        return {"tree": {"n_features": int(n_features), "n_classes": _encode(np.asarray(n_classes), arrays),
                         "n_outputs": int(n_outputs), "state": _encode(state, arrays)}}
    name = f"{type(value).__module__}.{type(value).__qualname__}"
    if name not in ALLOWED:
        raise TypeError(f"{name} is not a class a model may be stored with")
    return {"object": name, "state": _encode(dict(vars(value)), arrays)}


# ---------------------------------------------------------------- reading
def loads(data: bytes) -> RouteScorer:
    """A RouteScorer from dumps' bytes, or ArtifactError. Never unpickles, never imports by name."""
    if not data.startswith(MAGIC) or len(data) < len(MAGIC) + 8:
        raise ArtifactError("not a transship model artifact (stored by an earlier version, or not a model)")
    size = int.from_bytes(data[len(MAGIC):len(MAGIC) + 8], "little")
    start = len(MAGIC) + 8
    if size > len(data) - start:
        raise ArtifactError("the artifact is cut short")
    try:
        doc = json.loads(data[start:start + size])
        with np.load(io.BytesIO(data[start + size:]), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, EOFError, RecursionError, KeyError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"the artifact cannot be read ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ArtifactError(f"unknown artifact format {doc.get('format') if isinstance(doc, dict) else None!r}")
    try:
        scorer = _decode(doc.get("root"), arrays, 0)
    except RecursionError:
        raise ArtifactError("the artifact nests too deep") from None
    check_scorer(scorer)
    return scorer


def _decode(value: Any, arrays: dict[str, np.ndarray], depth: int) -> Any:
    if depth > 20:
        raise ArtifactError("the artifact nests deeper than a model does")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if not isinstance(value, dict) or len(value) not in (1, 2):
        raise ArtifactError(f"unexpected element {str(value)[:60]!r}")
    if "array" in value:
        place = value["array"]
        if not (isinstance(place, list) and len(place) == 4 and place[0] in arrays
                and all(isinstance(n, int) and n >= 0 for n in place[1:3]) and isinstance(place[3], list)
                and all(isinstance(n, int) and n >= 0 for n in place[3])):
            raise ArtifactError(f"array place {str(place)[:60]!r} is not one")
        pack, start, size, shape = place
        if start + size > len(arrays[pack]) or int(np.prod(shape, dtype=np.int64)) != size:
            raise ArtifactError(f"array place {place!r} lies outside its pack")
        return arrays[pack][start:start + size].reshape(shape)
    if "np" in value:
        try:
            dtype = np.dtype(value["np"])
        except (TypeError, ValueError):
            raise ArtifactError(f"unknown number type {value['np']!r}") from None
        if dtype.hasobject or dtype.kind not in "biuf":
            raise ArtifactError(f"number type {value['np']!r} is not allowed")
        return dtype.type(value["v"])
    if "list" in value or "tuple" in value:
        items = value.get("list", value.get("tuple"))
        if not isinstance(items, list):
            raise ArtifactError("a list that is not a list")
        decoded = [_decode(v, arrays, depth + 1) for v in items]
        return decoded if "list" in value else tuple(decoded)
    if "dict" in value:
        if not isinstance(value["dict"], dict):
            raise ArtifactError("a mapping that is not a mapping")
        return {k: _decode(v, arrays, depth + 1) for k, v in value["dict"].items()}
    if "tree" in value:
        return _tree(value["tree"], arrays, depth)
    if "object" in value:
        cls = ALLOWED.get(value["object"])
        if cls is None:
            raise ArtifactError(f"class {value['object']!r} is not one a model is made of")
        state = _decode(value.get("state"), arrays, depth + 1)
        if not isinstance(state, dict):
            raise ArtifactError(f"{value['object']}: its attributes are not a mapping")
        obj = cls.__new__(cls)
        obj.__dict__.update(state)  # attributes only: no constructor, no __setstate__ of the stored bytes' choice
        return obj
    raise ArtifactError(f"unexpected element {str(value)[:60]!r}")


def _tree(spec: Any, arrays: dict[str, np.ndarray], depth: int) -> Tree:
    """A scikit-learn Tree from its node arrays, checked first: its compiled traversal trusts them."""
    if not isinstance(spec, dict):
        raise ArtifactError("a tree that is not a mapping")
    n_features, n_outputs = spec.get("n_features"), spec.get("n_outputs")
    n_classes = _decode(spec.get("n_classes"), arrays, depth + 1)
    state = _decode(spec.get("state"), arrays, depth + 1)
    if not (isinstance(n_features, int) and 0 < n_features < 10_000 and n_outputs == 1
            and isinstance(n_classes, np.ndarray) and n_classes.shape == (1,) and n_classes.dtype.kind in "iu"
            and isinstance(state, dict)):
        raise ArtifactError("a tree's shape is not a regression tree's")
    nodes, values = state.get("nodes"), state.get("values")
    count = state.get("node_count")
    if isinstance(nodes, np.ndarray) and nodes.dtype.names == NODE_DTYPE.names and all(
            nodes.dtype.fields[n][0] == NODE_DTYPE.fields[n][0] for n in NODE_DTYPE.names):
        # The same fields, packed: .npz keeps a structured type's fields, not the padding scikit-learn's has.
        laid_out = np.zeros(nodes.shape, dtype=NODE_DTYPE)
        for name in NODE_DTYPE.names:
            laid_out[name] = nodes[name]
        nodes = state["nodes"] = laid_out
    if not (isinstance(nodes, np.ndarray) and nodes.dtype == NODE_DTYPE and nodes.ndim == 1
            and isinstance(count, int) and count == len(nodes) >= 1
            and isinstance(values, np.ndarray) and values.dtype == np.float64 and values.shape == (count, 1, 1)
            and isinstance(state.get("max_depth"), int)):
        raise ArtifactError("a tree's node arrays do not match its node count or scikit-learn's layout")
    index = np.arange(count)
    left, right, feature = nodes["left_child"], nodes["right_child"], nodes["feature"]
    leaf = left == TREE_LEAF
    inner_ok = ((left > index) & (left < count) & (right > index) & (right < count)
                & (feature >= 0) & (feature < n_features) & np.isfinite(nodes["threshold"]))
    leaf_ok = (right == TREE_LEAF) & (feature == TREE_UNDEFINED)
    if not np.where(leaf, leaf_ok, inner_ok).all():
        raise ArtifactError("a tree's nodes point outside the tree or the inputs")
    tree = Tree(n_features, n_classes.astype(np.intp), 1)
    try:
        tree.__setstate__(state)
    except (ValueError, TypeError, KeyError) as exc:
        raise ArtifactError(f"a tree cannot be rebuilt ({exc})") from None
    return tree


def check_scorer(scorer: Any) -> None:
    """The loaded object is a fitted RouteScorer whose parts fit together, and it scores a row."""
    if not isinstance(scorer, RouteScorer):
        raise ArtifactError("the artifact is not a route scorer")
    features = getattr(scorer, "features_", None)
    forest = getattr(scorer, "forest_", None)
    if not (isinstance(features, tuple) and features and all(isinstance(f, ModelFeature) for f in features)
            and all(isinstance(f.column, str) and f.transform in ("log1p", "signed_log10", "identity")
                    and f.direction in (1, -1) for f in features)):
        raise ArtifactError("the scorer's features are not a list of model features")
    d = len(features)
    for name in ("center_", "normal_low_", "normal_high_"):
        if not (isinstance(getattr(scorer, name, None), np.ndarray) and getattr(scorer, name).shape == (d,)):
            raise ArtifactError(f"the scorer's {name} does not match its {d} features")
    train = getattr(scorer, "train_scores_", None)
    if not (isinstance(train, np.ndarray) and train.ndim == 1 and len(train) >= 1 and np.isfinite(train).all()):
        raise ArtifactError("the scorer's training scores are missing or not finite")
    if not (isinstance(forest, IsolationForest) and isinstance(forest.estimators_, list) and forest.estimators_
            and all(isinstance(e, ExtraTreeRegressor) and isinstance(e.tree_, Tree) for e in forest.estimators_)
            and forest.n_features_in_ == d):
        raise ArtifactError("the scorer's forest is not an isolation forest over its features")
    used = forest.estimators_features_
    if not (isinstance(used, list) and len(used) == len(forest.estimators_)
            and all(isinstance(u, np.ndarray) and u.dtype.kind in "iu" and ((u >= 0) & (u < d)).all() for u in used)):
        raise ArtifactError("the forest's trees name inputs it does not have")
    for name in ("_decision_path_lengths", "_average_path_length_per_tree"):
        per_tree = getattr(forest, name, None)
        if not (isinstance(per_tree, tuple) and len(per_tree) == len(forest.estimators_)
                and all(isinstance(a, np.ndarray) and a.shape == (e.tree_.node_count,)
                        for a, e in zip(per_tree, forest.estimators_))):
            raise ArtifactError(f"the forest's {name} does not match its trees")
    try:
        score = scorer.anomaly_score(pl.DataFrame({f.column: [0.0] for f in features}))
    except Exception as exc:  # noqa: BLE001 - whatever is inconsistent, the model is refused
        raise ArtifactError(f"the scorer cannot score a row ({type(exc).__name__}: {exc})") from None
    if not (score.shape == (1,) and np.isfinite(score).all()):
        raise ArtifactError("the scorer does not give a finite score")
