"""Find and read what a run, evaluate or demo directory holds, for the report.

Everything is optional. A file that cannot be read becomes a note in the report, not an
error, so one bad file never hides the rest. The scan is bounded in depth, in the number
of directories and in image size, so pointing it at a large tree stays cheap.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from climatune.errors import ClimatuneError
from climatune.utils.bounded import load_json, load_yaml, read_text

__all__ = [
    "RunInfo",
    "Found",
    "scan",
    "read_json",
    "read_yaml",
    "read_csv",
    "read_losses",
    "PNG_SIGNATURE",
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_DEPTH = 4
MAX_DIRS = 2000
MAX_IMAGES = 80
MAX_IMAGE_BYTES = 8 * 2**20
# Never descended into: checkpoints, TensorBoard event files, data stores, caches.
_SKIP_DIRS = {"checkpoints", "tb", "__pycache__", "lightning_logs", "model"}
_SKIP_SUFFIXES = (".zarr", ".nc")


@dataclass
class RunInfo:
    """One run directory: its resolved config, artifact metadata and loss log."""

    path: Path
    name: str
    config: dict[str, Any] | None = None
    meta: dict[str, Any] | None = None
    log: Path | None = None


@dataclass
class Found:
    """Everything worth reporting under ``root``, plus notes on what was skipped."""

    root: Path
    runs: list[RunInfo] = field(default_factory=list)
    metrics: list[Path] = field(default_factory=list)
    seeds: list[Path] = field(default_factory=list)
    maps: list[Path] = field(default_factory=list)
    curves: list[Path] = field(default_factory=list)
    leads: list[Path] = field(default_factory=list)
    explains: list[Path] = field(default_factory=list)
    tunes: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _images: int = 0

    def own(self, path: Path) -> bool:
        """Whether ``path`` is a regular file of the run itself: under the root, reached
        without a symbolic link (one could point to ``/etc/passwd`` or another run)."""
        if not (path.exists() or path.is_symlink()):
            return False
        real = Path(os.path.realpath(path))
        try:
            inside = real == self.root.resolve() / path.relative_to(self.root)
        except ValueError:
            inside = False
        if not inside or not real.is_file():
            self.notes.append(f"{self.rel(path)}: a symbolic link or not a file, not read")
            return False
        return True

    @property
    def empty(self) -> bool:
        """True when nothing at all was found."""
        return not (
            self.runs
            or self.metrics
            or self.seeds
            or self.maps
            or self.curves
            or self.leads
            or self.explains
            or self.tunes
        )

    def rel(self, path: Path) -> str:
        """``path`` relative to the root (``.`` for the root itself)."""
        try:
            return path.relative_to(self.root).as_posix() or "."
        except ValueError:
            return str(path)

    def images(
        self, folder: Path, *, exclude: tuple[str, ...] = ("map_", "curve.png", "leads.png")
    ) -> list[Path]:
        """The PNGs directly in ``folder`` that are safe to embed (bounded count and size)."""
        out = []
        for png in sorted(folder.glob("*.png")):
            if png.name.startswith(".") or any(png.name.startswith(e) for e in exclude):
                continue
            if self.own(png) and self.accept_image(png):
                out.append(png)
        return out

    def accept_image(self, png: Path) -> bool:
        """Check size, signature and the image budget; note the reason when refused."""
        if self._images >= MAX_IMAGES:
            self.notes.append(
                f"{self.rel(png)}: not embedded, over the limit of {MAX_IMAGES} images"
            )
            return False
        try:
            size = png.stat().st_size
            with png.open("rb") as fh:
                head = fh.read(len(PNG_SIGNATURE))
        except OSError as exc:
            self.notes.append(f"{self.rel(png)}: unreadable ({exc.strerror})")
            return False
        if size > MAX_IMAGE_BYTES:
            self.notes.append(
                f"{self.rel(png)}: not embedded, {size / 2**20:.0f} MiB is over the limit"
            )
            return False
        if head != PNG_SIGNATURE:
            self.notes.append(f"{self.rel(png)}: not a PNG file, skipped")
            return False
        self._images += 1
        return True


def read_json(path: Path, notes: list[str]) -> Any:
    """Parse ``path`` as JSON (NaN allowed); ``None`` and a note on failure."""
    try:
        return load_json(path.read_text(encoding="utf-8"), path.name)
    except (OSError, UnicodeDecodeError, ClimatuneError) as exc:
        notes.append(f"{path.name}: not readable as JSON ({_first_line(exc)})")
        return None


def read_yaml(path: Path, notes: list[str]) -> Any:
    """Parse ``path`` with bounded size, nesting and alias expansion; ``None`` and a note on failure."""
    try:
        return load_yaml(read_text(path, path.name), path.name)
    except (OSError, UnicodeDecodeError, ClimatuneError) as exc:
        notes.append(f"{path.name}: not readable as YAML ({_first_line(exc)})")
        return None


def read_csv(path: Path, notes: list[str]) -> list[dict[str, str]]:
    """Rows of a CSV file with a header; ``[]`` and a note on failure."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        notes.append(f"{path.name}: not readable as CSV ({_first_line(exc)})")
        return []


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def to_float(value: Any) -> float:
    """``float(value)``, or NaN for blanks, ``None`` and text."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def read_losses(path: Path, notes: list[str]) -> dict[str, list[tuple[int, float]]]:
    """Per-epoch ``train`` and ``val`` losses from a Lightning ``CSVLogger`` file.

    Rows are sparse (one per logging event, blanks elsewhere). For each stage the
    epoch-level column is used (``train_loss_epoch`` or ``train_loss``), falling back to
    the mean of the step-level one. A resumed run's repeated epochs keep the last value.
    """
    rows = read_csv(path, notes)
    out: dict[str, list[tuple[int, float]]] = {}
    columns = set(rows[0]) if rows else set()
    for stage in ("train", "val"):
        for col, reduce in (
            (f"{stage}_loss_epoch", "last"),
            (f"{stage}_loss", "last"),
            (f"{stage}_loss_step", "mean"),
        ):
            if col not in columns:
                continue
            by_epoch: dict[int, list[float]] = {}
            for row in rows:
                epoch, value = to_float(row.get("epoch")), to_float(row.get(col))
                if math.isfinite(epoch) and math.isfinite(value):
                    by_epoch.setdefault(int(epoch), []).append(value)
            if by_epoch:
                out[stage] = [
                    (e, v[-1] if reduce == "last" else sum(v) / len(v))
                    for e, v in sorted(by_epoch.items())
                ]
                break
    return out


def _classify(found: Found, folder: Path, files: set[str]) -> None:
    """Record what ``folder`` holds."""
    meta_path = folder / "model" / "climatune.json"
    if not found.own(meta_path) and "climatune.json" in files and folder == found.root:
        meta_path = folder / "climatune.json"  # the root is itself a model/ directory
    log = folder / "logs" / "metrics.csv"
    has_meta, has_log = found.own(meta_path), found.own(log)
    if "config.yaml" in files or has_meta or has_log:
        run = RunInfo(
            folder, found.rel(folder) if folder != found.root else found.root.resolve().name or "."
        )
        if "config.yaml" in files:
            cfg = read_yaml(folder / "config.yaml", found.notes)
            run.config = cfg if isinstance(cfg, dict) else None
        if has_meta:
            meta = read_json(meta_path, found.notes)
            run.meta = meta if isinstance(meta, dict) else None
        run.log = log if has_log else None
        found.runs.append(run)
    if "metrics.json" in files:
        found.metrics.append(folder / "metrics.json")
    if "seeds.json" in files:
        found.seeds.append(folder / "seeds.json")
    for name in sorted(files):
        if name.startswith("map_") and name.endswith(".png") and found.accept_image(folder / name):
            found.maps.append(folder / name)
    if "curve.json" in files or "curve.png" in files:
        found.curves.append(folder)
    if "leads.json" in files or "leads.png" in files:
        found.leads.append(folder)
    if folder.name == "explain" or files & {"interactions.json", "attributions.nc"}:
        found.explains.append(folder)
    if folder.name == "tune" or files & {"best.yaml", "trials.csv"}:
        found.tunes.append(folder)


def scan(root: str | Path) -> Found:
    """Walk ``root`` (depth <= 4, <= 2000 directories) and collect what can be reported.

    Hidden entries, temporary ``.NAME.tmp-*`` leftovers, checkpoints, TensorBoard logs and
    data stores are skipped. The per-fraction runs under a ``curve.json`` (and the per-lead
    runs under a ``leads.json``) are summarised by that file, so they are not listed as runs.
    """
    root = Path(root)
    found = Found(root)
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        seen += 1
        if seen > MAX_DIRS:
            found.notes.append(f"stopped scanning after {MAX_DIRS} directories")
            break
        files = {f for f in filenames if not f.startswith(".") and found.own(folder / f)}
        depth = len(folder.relative_to(root).parts)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if depth < MAX_DEPTH
            and not d.startswith(".")
            and d not in _SKIP_DIRS
            and not d.endswith(_SKIP_SUFFIXES)
            and not (d.startswith("fraction-") and "curve.json" in files)
            and not (d.startswith("lead-") and "leads.json" in files)
        )
        _classify(found, folder, files)
    order = {name: i for i, name in enumerate(("pretrain", "finetune", "scratch"))}
    found.runs.sort(key=lambda r: (r.path != root, order.get(r.name, len(order)), r.name))
    nets = ("map_finetuned", "map_pretrained", "map_scratch")  # networks first, then baselines
    found.maps.sort(
        key=lambda p: (next((i for i, n in enumerate(nets) if p.name.startswith(n)), 3), str(p))
    )
    return found
