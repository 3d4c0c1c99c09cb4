"""What an incremental build needs to recompute a route's features from its first changed period on: how
far back the features read (lookback, baseline_reach), and the columns a frame of legs may carry to say
which rows are kept (NEEDED) and in which order its routes come (ROUTE_NO)."""

from __future__ import annotations

from features.params import FeatureParams


ROUTE_NO = "_route_no"  # optional in a frame of legs: see build_route_features


# A frame may carry this boolean column: then the robust baselines are computed only at its true rows (null
# elsewhere). An incremental build marks the rows whose features it keeps or whose z-scores those rows read
# (flows/stages/featurize.changed_route_features); the other rows of its frame are only the windows' history.
NEEDED = "_needed"


def baseline_reach(p: FeatureParams) -> int:
    """How many periods before a running spell of signal_persistence its robust baselines are read: the
    lags at which the China->hub leg counts (0..max_lag) for the spell's first period. The period before the
    spell needs none: left without baselines it counts as off, which it was (it ended the spell before). An
    incremental build marks NEEDED from this far before the spell."""
    return p.max_lag


def lookback(p: FeatureParams) -> int:
    """How many periods before t the features of period t read, at most: the prior periods before the window
    (t-W-P+1, which the robust baselines read too), pass-through's lagged supply (t-W-L+1), the lagged
    windows (t-W-max_lag+1) and co-movement (t-comove_window-max_lag+1). A frame that starts this many
    periods before a route's first changed period gives every later period's features exactly, except
    signal_persistence, which also needs its running spell and baseline_reach (flows/stages/featurize.py reads both)."""
    return max(p.window + p.prior - 1, p.window + p.lag - 1, p.window + p.max_lag - 1,
               p.comove_window + p.max_lag - 1)
