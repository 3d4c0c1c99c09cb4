"""The job's stages as plain functions on a DuckDB connection (no Prefect): load -> build -> featurize ->
score -> flag lists -> finish -> publish. The Prefect tasks (flows/pipeline.py), `transship evaluate`
(flows/harness/) and the test fixtures all run the job through these, so the sequence is written once.

- load.py: files into raw (with the reference tables), and staging, intermediate and marts built from raw.
- featurize.py: features.route_features from the mart, in full or for the routes that changed.
- score.py: per model group, a forest chosen (reused or fitted), route-periods scored, rows written; the
  flagged lists; the run recorded (registry.py: the models stored and loaded back).
- publish.py: the private build put over the live warehouse, decisions recorded meanwhile carried in.
"""

from flows.stages.featurize import route_features_from, update_features
from flows.stages.load import build, load
from flows.stages.publish import publish
from flows.stages.score import features_and_scores, finish, flagged_lists, score

__all__ = ["build", "features_and_scores", "finish", "flagged_lists", "load", "publish", "route_features_from",
           "score", "update_features"]
