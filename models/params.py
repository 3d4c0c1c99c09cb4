"""The scoring parameters (models/scoring.py says what each does), in a module of their own: the command line
and the settings read them without importing scikit-learn, which only scoring needs."""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class ScoreParams:
    n_estimators: int = 300
    max_samples: int = 256
    min_route_score: float = 0.5
    queue_size: int | None = None
    random_state: int = 0
    min_train_rows: int = 30
    train_sample_rows: int = 50_000
    min_evidence: float = 0.003
    max_peak_share: float = 0.85
    min_rise_z: float = 0.0
    min_us_mean_z: float = 2.0
    min_direct_fall_z: float = 1.0
    min_value_cover: float = 0.5
    forest_power: float = 0.5
    learned: bool = True  # route_score = √(graded_score × learned_score) (models/combiner.py); off: graded_score
    min_kg_coverage: float = 0.9
    explain_top: int = 3
    explain_routes: int = 50
    model_policy: str = "auto"  # auto | reuse | refit (models/registry.py)
    drift_psi: float = 0.25

    @classmethod
    def from_stored(cls, stored: dict | None) -> ScoreParams:
        """The parameters as a run stored them (main.runs.parameters -> scoring); today's defaults for
        anything missing (a run recorded before the parameter existed)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (stored or {}).items() if k in names})
