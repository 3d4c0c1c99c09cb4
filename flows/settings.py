"""Typed settings for a run, built once by the command line (or a caller) and passed in."""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from features.params import FeatureParams
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
    # Where the settings came from (settings_for): the settings file, and which values it or the caller gave.
    origin: dict[str, Any] | None = None

    def build_parameters(self) -> dict[str, Any]:
        """The settings the built tables depend on (a change makes the next build a full one). The model
        policy is not among them: it decides only which model scores, and a refit rescores everything."""
        scoring = {k: v for k, v in asdict(self.scoring).items() if k != "model_policy"}
        return {"features": asdict(self.features), "scoring": scoring, "sources": asdict(self.sources)}


# ---------------------------------------------------------------- the settings file beside the warehouse
# One place for a warehouse's run settings, read by `transship run`, `transship serve` and the deployment's
# scheduled_run alike: warehouse/transship.toml for warehouse/transship.duckdb. A value given on the command
# line wins over the file; the file wins over the defaults. Every key is optional.
SETTINGS_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "catalogue": (str, "the mineral catalogue TOML (relative to this file, or absolute)"),
    "window": (int, "the scoring window in months (1-24)"),
    "min_route_score": ((int, float), "the flag threshold on route_score (0-1)"),
    "queue_size": (int, "flag the N highest route scores per period instead (1 or more)"),
    "model_policy": (str, "auto, reuse or refit"),
    "census_measure": (str, "general imports or imports for consumption"),
    "cif_fob_rate": ((int, float), "share taken off CIF values (0-0.99)"),
    "dismissed_regrowth": ((int, float), "share a dismissed route's evidence must grow by to return (0-100)"),
    "notify_url": (str, "POST the run's summary here"),
    "notify_command": (str, "pipe the run's summary to this shell command"),
    "dask_address": (str, "a Dask scheduler, tcp://HOST:8786"),
    "max_file_mb": (int, "refuse an input file larger than this once decompressed"),
    "max_json_depth": (int, "refuse a JSON file nested deeper than this"),
}
_RANGES: dict[str, tuple[float, float]] = {
    "window": (1, 24), "min_route_score": (0, 1), "queue_size": (1, 1_000_000), "cif_fob_rate": (0, 0.99),
    "dismissed_regrowth": (0, 100), "max_file_mb": (1, 1 << 20), "max_json_depth": (2, 10_000)}
_CHOICES: dict[str, tuple[str, ...]] = {
    "model_policy": ("auto", "reuse", "refit"), "census_measure": ("general imports", "imports for consumption")}
MAX_SETTINGS_FILE_BYTES = 64 << 10


class SettingsFileError(ValueError):
    """A settings file that cannot be used, with the file and the key in the message."""


def settings_file_for(warehouse: Path) -> Path:
    """The settings file of a warehouse: beside it, its name with .toml (warehouse/transship.toml)."""
    return Path(warehouse).with_suffix(".toml")


def read_settings_file(path: Path) -> dict[str, Any]:
    """The settings in `path` ({} when there is none), checked: a [run] table of the keys in SETTINGS_KEYS,
    each of its type and range; a relative catalogue path is taken from the file's folder. Anything else
    (in [run] or in [fetch]) is a SettingsFileError naming the file and the key."""
    return _read_checked(Path(path))[0]


def _read_checked(path: Path) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The file read and parsed once, and every table checked: ([run] values, fetch_plan_of [fetch])."""
    import math
    import tomllib

    if not path.is_file():
        return {}, {}
    if path.stat().st_size > MAX_SETTINGS_FILE_BYTES:
        raise SettingsFileError(f"{path}: larger than {MAX_SETTINGS_FILE_BYTES >> 10} KB; a settings file holds a few lines")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsFileError(f"{path}: not a TOML file ({exc})") from None
    extra = sorted(set(data) - {"run", "fetch"})
    if extra:
        raise SettingsFileError(f"{path}: unknown table or key {extra[0]!r}; the settings go under [run] "
                                "(and the scheduled downloads under [fetch.comtrade] / [fetch.census])")
    plan = fetch_plan_of(path, data.get("fetch", {}))  # checked for `transship run` too: a bad one is refused
    values = data.get("run", {})
    if not isinstance(values, dict):
        raise SettingsFileError(f"{path}: 'run' must be a table ([run])")
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in SETTINGS_KEYS:
            raise SettingsFileError(f"{path}: [run] {key}: not a setting; known: {', '.join(SETTINGS_KEYS)}")
        kind, words = SETTINGS_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise SettingsFileError(f"{path}: [run] {key} = {value!r}: expected {words}")
        if key in _RANGES:
            low, high = _RANGES[key]
            if not (math.isfinite(value) and low <= value <= high):
                shown = [f"{int(x):,}" if float(x).is_integer() else f"{x:g}" for x in (low, high)]
                raise SettingsFileError(f"{path}: [run] {key} = {value!r}: out of range {shown[0]}..{shown[1]} ({words})")
        if key == "min_route_score" and value <= 0:
            raise SettingsFileError(f"{path}: [run] min_route_score = {value!r}: must be above 0 (0 would flag "
                                    "every route-period with tonnes beyond its run rate)")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise SettingsFileError(f"{path}: [run] {key} = {value!r}: use one of {', '.join(_CHOICES[key])}")
        if key == "catalogue":
            catalogue = Path(value) if Path(value).is_absolute() else path.parent / value
            if not catalogue.is_file():
                raise SettingsFileError(f"{path}: [run] catalogue = {value!r}: no such file ({catalogue})")
            value = catalogue
        out[key] = float(value) if kind == (int, float) else value
    return out, plan


# What a scheduled run may download before it runs ([fetch.comtrade], [fetch.census]; each optional).
FETCH_KEYS: dict[str, dict[str, tuple[type | tuple[type, ...], str]]] = {
    "comtrade": {"pulls": (list, "a list of {reporter = 156, flow = \"X\"} tables (156 China, 842 the US)"),
                 "codes": (list, "a list of HS codes, as text"), "months": (int, "how many months before this one"),
                 "base_url": (str, "the API's address"), "max_records": (int, "the records cap of one request"),
                 "attempts": (int, "tries of one request, with back-off"),
                 "retries": (int, "Prefect retries of the whole download"),
                 "retry_delay_seconds": ((int, float), "seconds between Prefect's retries")},
    "census": {"codes": (list, "a list of HS/HTS codes, as text"), "months": (int, "how many months before this one"),
               "base_url": (str, "the API's address"), "attempts": (int, "tries of one request, with back-off"),
               "retries": (int, "Prefect retries of the whole download"),
               "retry_delay_seconds": ((int, float), "seconds between Prefect's retries")},
}


def fetch_plan_of(path: Path, fetch: Any) -> dict[str, dict[str, Any]]:
    """The [fetch] tables of a settings file, checked: {source: its settings}, with defaults filled in
    (months 3, attempts 5, retries 2, retry_delay_seconds 60). A SettingsFileError names the file and key."""
    if not isinstance(fetch, dict):
        raise SettingsFileError(f"{path}: 'fetch' must hold tables ([fetch.comtrade], [fetch.census])")
    plan: dict[str, dict[str, Any]] = {}
    for source, spec in fetch.items():
        where = f"{path}: [fetch.{source}]"
        if source not in FETCH_KEYS:
            raise SettingsFileError(f"{path}: [fetch.{source}]: not a source; known: {', '.join(FETCH_KEYS)}")
        if not isinstance(spec, dict):
            raise SettingsFileError(f"{where}: must be a table")
        for key, value in spec.items():
            if key not in FETCH_KEYS[source]:
                raise SettingsFileError(f"{where} {key}: not a setting; known: {', '.join(FETCH_KEYS[source])}")
            kind, words = FETCH_KEYS[source][key]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise SettingsFileError(f"{where} {key} = {value!r}: expected {words}")
        for key in ("codes", "months") + (("pulls",) if source == "comtrade" else ()):
            if key not in spec:
                raise SettingsFileError(f"{where}: {key} is required ({FETCH_KEYS[source][key][1]})")
        if not spec["codes"] or not all(isinstance(c, str) and c.isdigit() and 4 <= len(c) <= 10 for c in spec["codes"]):
            raise SettingsFileError(f"{where} codes = {spec['codes']!r}: HS codes as text of 4 to 10 digits")
        if not 1 <= spec["months"] <= 36:
            raise SettingsFileError(f"{where} months = {spec['months']!r}: out of range 1..36")
        for key, low, high in (("attempts", 1, 20), ("retries", 0, 10), ("retry_delay_seconds", 0, 3600),
                               ("max_records", 1, 250_000)):
            if key in spec and not low <= spec[key] <= high:
                raise SettingsFileError(f"{where} {key} = {spec[key]!r}: out of range {low}..{high:,}")
        if source == "comtrade":
            for pull in spec["pulls"]:
                if not (isinstance(pull, dict) and set(pull) == {"reporter", "flow"} and pull["flow"] in ("X", "M")
                        and isinstance(pull["reporter"], int) and not isinstance(pull["reporter"], bool)):
                    raise SettingsFileError(f"{where} pulls: {pull!r}: write {{reporter = 156, flow = \"X\"}}")
        plan[source] = {"months": 3, "attempts": 5, "retries": 2, "retry_delay_seconds": 60, **spec}
    return plan


def fetch_plan(warehouse: Path) -> dict[str, dict[str, Any]]:
    """The scheduled downloads of a warehouse's settings file ({} when it has none), with every check of
    read_settings_file."""
    return _read_checked(settings_file_for(warehouse))[1]


def settings_for(warehouse: Path, reports_dir: Path, given: dict[str, Any] | None = None,
                 full: bool = False) -> tuple[Settings, dict[str, Any]]:
    """The run's Settings from the warehouse's settings file, with the values in `given` (the command line's,
    or a deployment's parameters, None meaning not given) winning over it. Returns them and what was used,
    with where each came from ("file" or "given"), for the run's record."""
    path = settings_file_for(warehouse)
    values = read_settings_file(path)
    source = {k: "file" for k in values}
    for key, value in (given or {}).items():
        if value is not None:
            values[key], source[key] = value, "given"
    def part(names: dict[str, str]) -> dict[str, Any]:
        """The settings given or in the file, as the fields `names` maps them to (the rest keep their
        dataclass defaults: no default is restated here)."""
        return {field_name: values[key] for key, field_name in names.items() if key in values}

    limits = part({"max_json_depth": "max_json_depth"})
    if "max_file_mb" in values:
        limits["max_file_bytes"] = int(values["max_file_mb"]) << 20
    settings = Settings(
        warehouse=Path(warehouse), reports_dir=Path(reports_dir), full=full, input_limits=InputLimits(**limits),
        features=FeatureParams(**part({"window": "window"})),
        scoring=ScoreParams(**part({"min_route_score": "min_route_score", "queue_size": "queue_size",
                                    "model_policy": "model_policy"})),
        sources=SourceParams(**part({"census_measure": "census_import_measure", "cif_fob_rate": "cif_fob_rate"})),
        **part({k: k for k in ("catalogue", "dismissed_regrowth", "notify_url", "notify_command", "dask_address")}))
    record = {"file": str(path) if path.is_file() else None,
              "values": {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}, "from": source}
    return settings, record


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
