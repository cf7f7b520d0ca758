"""``climatune evaluate``: a model, its baselines and, for a fine-tune, the scratch network."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

from climatune.config import Config, config_inputs, load_config, model_config
from climatune.data.sources import grid_note, grid_spec
from climatune.data.view import TaskView, build_view
from climatune.errors import ClimatuneError
from climatune.evaluation.evaluate import evaluate_view, model_label, parse_baselines, write_metrics
from climatune.evaluation.maps import plot_maps
from climatune.evaluation.seeds import SEEDS_FILE, check_seeds, member_predictions, seed_rows
from climatune.inference import LoadedModel, load_model, model_paths, model_view
from climatune.report.seeds import seed_lines
from climatune.report.tables import probabilistic_lines, verdicts
from climatune.utils.atomic import atomic_path, prepare_output_dir, releases_outputs
from climatune.workflows.pretraining import train_scratch

__all__ = ["evaluate_command"]


def _scratch_view(cfg: Config, view: TaskView) -> TaskView:
    """``view`` (read for the scored model, :func:`model_view`) reading its static inputs
    as ``cfg`` says, for the scratch network trained here: with the config's position
    wavelengths and its user fields' statistics fitted on its cells, as in ``curve`` and
    ``leads`` and as its ``config.yaml`` records, not the fine-tuned model's."""
    return dataclasses.replace(
        view,
        position=tuple(float(w) for w in cfg.data.position_wavelengths or ()),
        static_scale=None,
    )


def _check_scratch(scratch: LoadedModel, model: LoadedModel, path: str | Path) -> None:
    """Refuse a ``--scratch`` model that is not a network trained from scratch on the same
    task and grid as the evaluated one (a fine-tune, the model's own parent, another task)."""
    here = scratch.model_dir.resolve()
    if here == model.model_dir.resolve():
        raise ClimatuneError(f"--scratch {path} is the evaluated model itself")
    if scratch.meta.data.get("parent"):
        raise ClimatuneError(f"--scratch {path} is a fine-tuned model, not trained from scratch")
    if str(here) == str(Path(model.meta.data.get("parent") or "").resolve()):
        raise ClimatuneError(
            f"--scratch {path} is the pre-trained parent of the evaluated model; give a network "
            "trained from scratch on the fine-tuning task"
        )
    mine = (model.meta.data["task"], model.meta.outputs, model.meta.data["grid"])
    theirs = (scratch.meta.data["task"], scratch.meta.outputs, scratch.meta.data["grid"])
    if mine[:2] != theirs[:2]:
        raise ClimatuneError(
            f"--scratch {path} does another task (task, outputs: {theirs[:2]}) than the "
            f"evaluated model ({mine[:2]}); give a network trained from scratch on the same task"
        )
    if mine[2] != theirs[2]:
        raise ClimatuneError(
            f"--scratch {path} was trained on another grid or region than the evaluated model; "
            "give a network trained from scratch on the same data"
        )


def _check_sources_grid(model: LoadedModel, view: TaskView) -> None:
    """A model trained on ``data.sources`` regridded to its grid, scoring data on another:
    a note (:func:`~climatune.data.sources.grid_note`), or, for a model that reads
    anomalies from a per-cell climatology of its grid, the error that says how to read
    the data on that grid."""
    grid = model.meta.data["grid"]
    note = grid_note(grid, view.fields)
    shape = (len(grid["lat"]), len(grid["lon"]))
    if model.normalizer.climatology_ and (view.fields.lat.size, view.fields.lon.size) != shape:
        spec = grid_spec(grid["lat"], grid["lon"])
        where = f" {{lat: {spec['lat']}, lon: {spec['lon']}}}" if spec else ""
        raise ClimatuneError(
            f"the model reads anomalies from a climatology of its own {shape[0]}x{shape[1]} "
            f"grid, which its data.sources were regridded to, and this data is on "
            f"{view.fields.lat.size}x{view.fields.lon.size} cells: list it in data.sources with "
            f"data.grid{where} to regrid it on the fly, or fine-tune on it"
        )
    if note:
        logging.getLogger("climatune").warning("%s", note)


def target_units(view: TaskView) -> dict[str, str]:
    """The units of each target: an index's are its series', not an input field's."""
    targets = view.target_data()
    return {v: str(targets[v].attrs.get("units", "")) for v in view.targets if v in targets}


@releases_outputs
def evaluate_command(
    model_path: str | Path,
    *,
    config: str | None,
    overrides: list[str] | None,
    baselines: str,
    out: str | Path,
    scratch: str | Path | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    seeds: int = 1,
) -> Path:
    """``climatune evaluate``: metrics of a model and its baselines on the test years, plus maps.

    Prints the verdict of each target variable, every comparison with its 95 % interval.
    With ``seeds`` K > 1, the first K members of each ensemble (the model and the scratch
    network) are also scored one by one, as K seeds of one recipe: ``seeds.json`` and the
    printed lines give each metric's mean and spread over seeds and each difference's
    pooled interval (:func:`~climatune.evaluation.seeds.seed_rows`). A network with fewer
    than K members is refused before anything is written.

    The models predict on ``device``; a scratch network for ``--baselines`` trains as the
    config's ``trainer`` says. ``overwrite`` replaces an earlier evaluation at ``out``.
    """
    model = load_model(model_path, device)
    check_seeds(seeds, {"evaluated": model})
    if config:
        cfg = load_config(config, overrides)
    else:
        cfg = model_config(model.meta, overrides)
    inputs = [*model_paths(model_path), *config_inputs(cfg), *([config] if config else [])]
    claim: dict[str, Any] = {
        "command": "evaluate",
        "inputs": inputs + (model_paths(scratch) if scratch is not None else []),
        "overwrite": overwrite,
    }
    out = prepare_output_dir(out, create=False, **claim)
    if cfg.data.sources and len(cfg.data.sources) > 1:
        listed = ", ".join(s.name for s in cfg.data.sources)
        raise ClimatuneError(
            f"evaluate scores one archive at a time; data.sources lists {len(cfg.data.sources)} "
            f"({listed}): keep one, --set 'data.sources=[{{name: NAME, path: PATH}}]' (read on "
            "the model's grid, with the source's own statistics when the model kept them per "
            "source), or give --set data.path=PATH (read on the file's own grid)"
        )
    view = build_view(cfg.data, cfg.task, partial_inputs=True)
    if model.meta.data["config"].get("data", {}).get("sources") and not view.is_scalar:
        _check_sources_grid(model, view)
    if "test" not in view.anchors:
        raise ClimatuneError("the config's split has no test block; add data.split.test")
    # the same task, inputs and units, checked before any output; scored in the model's
    # units (which label the metrics), without the inputs the data lacks if it runs so
    view = model_view(model, view)
    label = model_label(model)
    names = parse_baselines(baselines, view.kind, lead=view.lead, scratch=label == "finetuned")
    models = {label: model}
    if scratch is not None:
        if label == "scratch":
            raise ClimatuneError(f"{model_path} is itself a scratch network; drop --scratch")
        models["scratch"] = load_model(scratch, device)
        _check_scratch(models["scratch"], model, scratch)
        model_view(models["scratch"], view)  # it too must run on these inputs
        check_seeds(seeds, {"--scratch": models["scratch"]})
    if "scratch" in names and scratch is None and cfg.ensemble.members < seeds:
        raise ClimatuneError(
            f"--seeds {seeds} scores {seeds} members of the scratch network too, and the one "
            f"trained here would have ensemble.members={cfg.ensemble.members}; set "
            f"ensemble.members={seeds} (--set), or pass --scratch RUN with enough members"
        )
    out = prepare_output_dir(out, **claim)  # created only once the inputs are known to be good
    if "scratch" in names and scratch is None:
        print(
            f"climatune: training the same network from scratch on this task for the 'scratch' baseline "
            f"({cfg.trainer.max_epochs} epochs at most, into {out / 'scratch'}); "
            "pass --scratch RUN to reuse one",
            file=sys.stderr,
        )
        models["scratch"] = load_model(
            train_scratch(cfg, _scratch_view(cfg, view), out / "scratch"), device
        )
    rows, preds = evaluate_view(view, models, names)
    write_metrics(rows, out)
    units = target_units(view)
    lead = view.lead if view.kind in ("forecast", "index") else None
    for line in verdicts(rows, units, lead) + probabilistic_lines(rows, units):
        print(line)
    if seeds > 1:
        members = member_predictions(models, view, seeds)
        others = {name: pred for name, pred in preds.items() if name not in models}
        over = seed_rows(view, members, others)
        with atomic_path(out / SEEDS_FILE) as tmp:
            tmp.write_text(json.dumps(over, indent=2))
        for line in seed_lines(over, units):
            print(line)
    truth = view.truth("test")
    for label in models:
        plot_maps(preds[label], truth, out, label=label, weights=view.weights())
    return out
