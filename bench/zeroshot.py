"""Zero-shot skill of a pre-trained model on regional crops tiled over its domain.

``python bench/zeroshot.py RUN --config CFG`` places windows the size of ``CFG``'s region
(and its halo) on a ``--tiles`` lattice over the domain, and scores on each window's
region, for the model in ``RUN`` on ``CFG``'s data and test years:

- ``crop``: the window read alone, as a user with only that region's data would
  (``evaluate`` on a regional config: the crop inside its margin);
- ``context``: the same cells predicted with the whole domain around them.

It prints a row for ``CFG``'s own region, then one per window, the RMSE pooled over
windows (square root of their mean MSE) and the whole-domain RMSE, and writes them as
JSON with ``--json``. A single region mixes what its edges cost with how hard its climate
is; the windows pooled cover the domain (but for the outer band of the halo), so
``crop / whole`` compares like with like, and ``crop / context`` compares the same cells.
The domain is taken as the span of its latitudes and longitudes: one that crosses 0° in
longitude is not tiled correctly.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from climatune.config import load_config  # noqa: E402
from climatune.data.view import build_view  # noqa: E402
from climatune.evaluation.metrics import rmse  # noqa: E402
from climatune.inference import load_model, predict_view  # noqa: E402

__all__ = ["main", "tile_boxes"]


def tile_boxes(
    lat: tuple[float, float],
    lon: tuple[float, float],
    size: tuple[float, float],
    halo: float,
    tiles: tuple[int, int],
) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """``tiles`` = (rows, columns) regions of ``size`` degrees, evenly spaced so that each
    one's halo stays inside the domain ``lat`` x ``lon``; the first and last touch its edges."""

    def starts(lo: float, hi: float, extent: float, n: int) -> np.ndarray:
        first, last = lo + halo, hi - halo - extent
        if last < first:
            raise ValueError(
                f"a {extent:g}° region with a {halo:g}° halo does not fit in [{lo:g}, {hi:g}]"
            )
        return np.linspace(first, last, n) if n > 1 else np.array([(first + last) / 2])

    return [
        ((float(a), float(a + size[0])), (float(b), float(b + size[1])))
        for a in starts(*lat, size[0], tiles[0])
        for b in starts(*lon, size[1], tiles[1])
    ]


def _mse(pred: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray) -> float:
    """Latitude-weighted MSE over times and cells, as ``evaluate`` scores it."""
    return rmse(pred, truth, weights) ** 2


def _rmse(row: dict) -> dict:
    return {**row, "crop": row["crop"] ** 0.5, "context": row["context"] ** 0.5}


def main(argv: list[str] | None = None) -> dict:
    """Score the windows; print the table and return it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a pre-trained run folder (or its model/)")
    parser.add_argument("--config", required=True, help="a config with a data.region")
    parser.add_argument("--tiles", default="3x4", help="rows x columns of windows (3x4)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args(argv)

    model = load_model(args.run)
    base = load_config(args.config, [])
    region = base.data.region
    if region is None or region.lat is None or region.lon is None:
        parser.error(f"{args.config} has no data.region box to tile")
    whole = build_view(load_config(args.config, ["data.region=null"]).data, base.task)
    name = whole.targets[0]
    pred = predict_view(model, whole, args.split)[name]
    truth = whole.truth(args.split)[name]
    lat = (float(whole.fields.lat.min()), float(whole.fields.lat.max()))
    lon = (float(whole.fields.lon.min()), float(whole.fields.lon.max()))
    size = (region.lat[1] - region.lat[0], region.lon[1] - region.lon[0])
    rows, cols = (int(n) for n in args.tiles.split("x"))

    def score(box_lat: tuple[float, float], box_lon: tuple[float, float]) -> dict:
        over = [f"data.region.lat=[{box_lat[0]:g}, {box_lat[1]:g}]"]
        over.append(f"data.region.lon=[{box_lon[0]:g}, {box_lon[1]:g}]")
        cfg = load_config(args.config, over)
        view = build_view(cfg.data, cfg.task)
        w = view.weights()
        crop = _mse(predict_view(model, view, args.split)[name], view.truth(args.split)[name], w)
        cells = {"lat": w.lat, "lon": w.lon}
        context = _mse(pred.sel(cells), truth.sel(cells), w)
        return {"lat": box_lat, "lon": box_lon, "crop": crop, "context": context}

    own = score(tuple(region.lat), tuple(region.lon))
    boxes = tile_boxes(lat, lon, size, region.halo, (rows, cols))
    windows = [score(box_lat, box_lon) for box_lat, box_lon in boxes]
    whole_mse = _mse(pred, truth, whole.weights())
    pooled = {k: float(np.sqrt(np.mean([r[k] for r in windows]))) for k in ("crop", "context")}
    result = {
        "run": str(args.run),
        "config": str(args.config),
        "split": args.split,
        "region": _rmse(own),
        "windows": [_rmse(r) for r in windows],
        "whole": whole_mse**0.5,
        **pooled,
        "crop/whole": pooled["crop"] / whole_mse**0.5,
        "crop/context": pooled["crop"] / pooled["context"],
    }
    print(f"{'lat':>13} {'lon':>13} {'crop':>7} {'context':>7}")
    for r in [result["region"], *result["windows"]]:
        print(
            f"{r['lat'][0]:6.1f}-{r['lat'][1]:<6.1f} {r['lon'][0]:6.1f}-{r['lon'][1]:<6.1f} "
            f"{r['crop']:7.3f} {r['context']:7.3f}"
        )
    print(
        f"pooled over {len(windows)} windows: crop {pooled['crop']:.3f}, context "
        f"{pooled['context']:.3f}; whole domain {result['whole']:.3f}; crop/whole "
        f"{result['crop/whole']:.2f}, crop/context {result['crop/context']:.2f}"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
