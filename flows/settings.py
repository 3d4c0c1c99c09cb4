"""Typed settings for a run, built once by the command line (or a caller) and passed in."""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from features.route_features import FeatureParams
from models.params import ScoreParams
from warehouse.files import InputLimits
from warehouse.schema import SourceParams

DEFAULT_WAREHOUSE = Path("warehouse/transship.duckdb")
DEFAULT_REPORTS = Path("reports")


@dataclass(frozen=True)
class Settings:
    warehouse: Path = DEFAULT_WAREHOUSE
    reports_dir: Path = DEFAULT_REPORTS
    catalogue: Path | None = None  # None: the bundled warehouse/catalogue/minerals.toml
    features: FeatureParams = field(default_factory=FeatureParams)
    scoring: ScoreParams = field(default_factory=ScoreParams)
    sources: SourceParams = field(default_factory=SourceParams)
    report_top_n: int = 25
    # A dismissed route returns to the flagged list when its evidence (largest excess over its prior run rate
    # in a flagged period) exceeds what the analyst saw by this share (0.5 = 50 % more).
    dismissed_regrowth: float = 0.5
    # When a run ends (succeeded or failed): POST its summary as JSON here, and/or pipe it to this shell command.
    notify_url: str | None = None
    notify_command: str | None = None
    # Rebuild every period and route even when the warehouse could be updated incrementally (--full).
    full: bool = False
    # A Dask scheduler (tcp://host:8786): a full build fits and scores its product groups on that cluster's
    # workers (flows/fanout.py). None: everything runs in this process.
    dask_address: str | None = None
    dask_in_flight: int = 4
    # What one input file may cost to read (decompressed size, JSON nesting): a file beyond is refused.
    input_limits: InputLimits = field(default_factory=InputLimits)

    def build_parameters(self) -> dict[str, Any]:
        """The settings the built tables depend on (a change makes the next build a full one). The model
        policy is not among them: it decides only which model scores, and a refit rescores everything."""
        scoring = {k: v for k, v in asdict(self.scoring).items() if k != "model_policy"}
        return {"features": asdict(self.features), "scoring": scoring, "sources": asdict(self.sources)}


def code_version() -> str:
    """Package version plus the git commit (and '-dirty' for uncommitted changes) when run from a checkout."""
    try:
        pkg = version("transship")
    except PackageNotFoundError:
        pkg = "unknown"
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
        return f"{pkg}+{sha}{'-dirty' if dirty else ''}"
    except (OSError, subprocess.SubprocessError):
        return pkg
