"""How much each input of a variable-token model matters: RMSE with every input, then with
each one left out (fed by name, as ``predict``/``evaluate`` do for data that lacks it).

``python bench/subset_inputs.py OUT`` writes a small synthetic coupled archive under OUT,
trains a ``vartoken_vit`` forecaster of next month's tas from tas, sst, siconc and zg
(``model.residual: false``, so that tas itself can be left out), and prints the test RMSE
of each case next to the climatology's, and that of the ridge baseline refitted on the
same inputs (what the data itself says each input is worth). One thread, a minute or two.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch

from climatune.config import load_config
from climatune.data.synthetic import write_synthetic
from climatune.data.view import build_view
from climatune.evaluation.baselines import make_baseline
from climatune.evaluation.metrics import rmse
from climatune.inference import load_model, predict_view
from climatune.workflows.pretraining import pretrain

INPUTS = ["tas", "sst", "siconc", "zg"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="a new folder for the archive and the run")
    parser.add_argument("--years", type=int, default=30)
    parser.add_argument("--grid", default="32x64")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--history", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    store = args.out / "synthetic.zarr"
    if not store.exists():
        nlat, nlon = (int(n) for n in args.grid.split("x"))
        write_synthetic(store, years=args.years, grid=(nlat, nlon))
    first = 1950
    sets = [
        f"data.path={store}",
        f"data.variables=[{', '.join(INPUTS)}]",
        "data.targets=[tas]",
        f"data.split.train=[{first}, {first + args.years - 6}]",
        f"data.split.val=[{first + args.years - 5}, {first + args.years - 4}]",
        f"data.split.test=[{first + args.years - 3}, {first + args.years - 1}]",
        "data.batch_size=16",
        f"task.history={args.history}",
        "model.backbone=vartoken_vit",
        "model.width=16",
        "model.depth=2",
        "model.dim=32",
        "model.patch=4",
        "model.residual=false",
        f"trainer.max_epochs={args.epochs}",
        "trainer.patience=4",
        "trainer.progress_bar=false",
    ]
    cfg = load_config(None, sets)
    run = args.out / "run"
    if not (run / "model").exists():
        pretrain(cfg, out=run)
    model = load_model(run)
    view = build_view(cfg.data, cfg.task)
    truth, weights = view.truth("test"), view.weights()
    for name in ("climatology", "damped_persistence"):
        ref = make_baseline(name).fit(view).predict(view, "test")
        print(f"{name} (baseline): {float(rmse(ref.tas, truth.tas, weights)):.3f} K")
    print("| inputs | vartoken_vit, one model | ridge baseline refitted on these inputs |")
    print("|---|---|---|")
    for left_out in [None, *view.inputs]:  # zg is read at 500 hPa: zg500
        given = [v for v in view.inputs if v != left_out]
        sub = dataclasses.replace(view, inputs=given)
        pred = predict_view(model, sub, "test")
        ridge = make_baseline("ridge").fit(sub).predict(sub, "test")
        label = "all" if left_out is None else f"all but {left_out}"
        net, lin = (float(rmse(p.tas, truth.tas, weights)) for p in (pred, ridge))
        print(f"| {label} | {net:.3f} K | {lin:.3f} K |")
    print(f"({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
