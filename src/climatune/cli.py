"""The ``climatune`` command line: a thin layer over the public API.

Each subcommand parses its flags and calls one library function. User errors
(:class:`~climatune.errors.ClimatuneError`) print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import traceback
import warnings
from collections.abc import Callable

from climatune import __version__
from climatune.errors import ClimatuneError, Interrupted, os_error
from climatune.utils.openmp import prefer_passive_openmp

__all__ = ["main", "build_parser"]

_MAX_ERROR = 1000  # characters of an error line


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad flags as a ClimatuneError (one line, exit 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ClimatuneError(f"{message} (see '{self.prog} --help')")


def _config(args: argparse.Namespace):
    from climatune.config import load_config

    return load_config(getattr(args, "config", None), getattr(args, "set", None))


def _cmd_inspect(args: argparse.Namespace) -> None:
    from climatune.data.inspect import format_sources, format_table, inspect_paths

    paths = args.paths
    if len(paths) == 1 and paths[0].endswith((".yaml", ".yml")):  # a config: its data
        from climatune.data.sources import describe_sources

        data = _config(argparse.Namespace(config=paths[0])).data
        if data.sources:
            desc = describe_sources(data)
            print(json.dumps(desc, indent=2) if args.json else format_sources(desc))
            return
        paths = data.path if isinstance(data.path, list) else [data.path]
    rows = inspect_paths(paths)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))


def _cmd_synth(args: argparse.Namespace) -> None:
    from climatune.data.synthetic import parse_grid, write_synthetic

    if args.model or args.family:
        _synth_models(args)
        return
    if args.coarsen is not None:
        raise ClimatuneError("--coarsen applies to --model or --family; give --grid instead")
    grid = parse_grid(args.grid or "64x128")
    path = write_synthetic(args.out, years=args.years, grid=grid, freq=args.freq, seed=args.seed)
    print(f"wrote {path}")


def _synth_models(args: argparse.Namespace) -> None:
    from climatune.data.gcm_family import parse_members, write_family, write_member

    if args.model and args.family:
        raise ClimatuneError("give --model NAME or --family A,B,..., not both")
    if args.grid is not None:
        raise ClimatuneError("a synthetic model has its own grid; use --coarsen K, not --grid")
    kwargs = {
        "years": args.years,
        "seed": args.seed,
        "coarsen": 1 if args.coarsen is None else args.coarsen,
    }
    if args.model:
        print(f"wrote {write_member(args.out, args.model, freq=args.freq, **kwargs)}")
        return
    for path in write_family(
        args.out, parse_members(args.family), freq=args.freq, **kwargs
    ).values():
        print(f"wrote {path}")


def _cmd_samples(args: argparse.Namespace) -> None:
    from climatune.data.bundled import list_bundled

    for row in list_bundled():
        print(f"sample://{row['name']:<20} {row['years']}  {row['description']}")
        print(f"{'':<30}units: {row['units']}")


def _cmd_regions(args: argparse.Namespace) -> None:
    from climatune.data.ar6 import list_named_regions

    print("# IPCC AR6 WGI reference regions v4 (Iturbide et al. 2020, CC-BY 4.0)")
    for row in list_named_regions():
        print(f"{row['abbrev']:<5} {row['surface']:<10} {row['name']}")


def _cmd_pretrain(args: argparse.Namespace) -> None:
    from climatune.workflows.pretraining import pretrain

    run = pretrain(_config(args), out=args.out, resume=args.resume, overwrite=args.overwrite)
    print(f"model written to {run / 'model'}")


def _cmd_finetune(args: argparse.Namespace) -> None:
    from climatune.workflows.finetuning import finetune

    run = finetune(
        _config(args),
        source=args.source,
        out=args.out,
        resume=args.resume,
        overwrite=args.overwrite,
    )
    print(f"model written to {run / 'model'}")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from climatune.workflows.evaluate import evaluate_command

    out = evaluate_command(
        args.model,
        config=args.config,
        overrides=args.set,
        baselines=args.baselines,
        out=args.out,
        scratch=args.scratch,
        device=args.device,
        overwrite=args.overwrite,
        seeds=args.seeds,
    )
    print(f"metrics written to {out / 'metrics.json'}")


def _cmd_predict(args: argparse.Namespace) -> None:
    from climatune.inference.netcdf import predict_file

    written = predict_file(
        args.model,
        args.input,
        args.output,
        device=args.device,
        units=args.units,
        quantiles=args.quantiles,
        samples=args.samples,
    )
    print(f"wrote {written}")


def _cmd_curve(args: argparse.Namespace) -> None:
    from climatune.workflows.curve import curve_command

    out = curve_command(
        _config(args),
        source=args.source,
        fractions=args.fractions,
        out=args.out,
        seeds=args.seeds,
        baselines=args.baselines,
        overwrite=args.overwrite,
    )
    print(f"curve written to {out / 'curve.json'}")


def _cmd_leads(args: argparse.Namespace) -> None:
    from climatune.workflows.leads import lead_summary, leads_command, parse_leads

    leads = parse_leads(args.leads)  # a bad list is refused before the config is read
    out = leads_command(
        _config(args),
        source=args.source,
        leads=leads,
        out=args.out,
        overwrite=args.overwrite,
    )
    for line in lead_summary(json.loads((out / "leads.json").read_text())):
        print(line)
    print(f"skill by lead written to {out / 'leads.json'}")


def _cmd_report(args: argparse.Namespace) -> None:
    from climatune.report.html import write_report

    print(f"report written to {write_report(args.dir)}")


def _cmd_demo(args: argparse.Namespace) -> None:
    from climatune.workflows.demo import run_demo

    report = run_demo(out=args.out, fast=args.fast, overwrite=args.overwrite)
    print(f"report: {report}")


def _cmd_explain(args: argparse.Namespace) -> None:
    from climatune.explain.run import explain_command

    out = explain_command(
        args.model,
        config=args.config,
        overrides=args.set,
        method=args.method,
        target=args.target,
        samples=args.samples,
        out=args.out,
        device=args.device,
        overwrite=args.overwrite,
    )
    print(f"attributions written to {out}")


def _cmd_tune(args: argparse.Namespace) -> None:
    from climatune.tuning.search import tune_command

    out = tune_command(
        _config(args),
        source=args.source,
        space=args.space,
        trials=args.trials,
        folds=args.folds,
        storage=args.storage,
        study=args.study,
        jobs=args.jobs,
        out=args.out,
    )
    print(f"best config written to {out / 'best.yaml'}")


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device",
        default="auto",
        help="where the network runs: auto (a GPU when there is one), cpu, cuda or cuda:N",
    )


def _add_out(p: argparse.ArgumentParser, **kw) -> None:
    p.add_argument("--out", **kw)
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out if an earlier run of this command wrote it",
    )


def _add_config(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--config", required=required, help="YAML run config")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key, e.g. trainer.max_epochs=1 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every subcommand."""
    parser = _Parser(
        prog="climatune", description="Pre-train and fine-tune deep networks on climate data."
    )
    parser.add_argument("--version", action="version", version=f"climatune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    data = sub.add_parser(
        "data",
        help="inspect data, make a synthetic archive, list bundled samples and named regions",
    )
    dsub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND", parser_class=_Parser)
    p = dsub.add_parser("inspect", help="describe variables, grid, time axis and NaNs")
    p.add_argument(
        "paths",
        nargs="+",
        help="NetCDF files, globs, Zarr stores or sample://NAME; or one YAML config (its sources)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_inspect)
    p = dsub.add_parser("synth", help="write a synthetic coupled climate archive (Zarr)")
    p.add_argument(
        "--out",
        required=True,
        help="a new Zarr store, or a new folder for --family (never replaced)",
    )
    p.add_argument("--years", type=int, required=True)
    p.add_argument("--grid", help="NLATxNLON, e.g. 64x128 (the default)")
    p.add_argument("--freq", choices=["monthly", "daily"], default="monthly")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--model",
        help="one synthetic GCM on its own grid and calendar: gcm-a, gcm-b, gcm-c, or obs "
        "(the truth; it keeps the last 40 of --years)",
    )
    p.add_argument(
        "--family", help="comma-separated models, e.g. gcm-a,gcm-b,gcm-c,obs: OUT/NAME.zarr each"
    )
    p.add_argument(
        "--coarsen", type=int, help="divide each model's grid by K per axis (1, 2, 3 or 6)"
    )
    p.set_defaults(func=_cmd_synth)
    p = dsub.add_parser("samples", help="list the bundled real datasets")
    p.set_defaults(func=_cmd_samples)
    p = dsub.add_parser(
        "regions", help="list the named regions data.region accepts (IPCC AR6, by acronym or name)"
    )
    p.set_defaults(func=_cmd_regions)

    p = sub.add_parser("pretrain", help="pre-train a network on an archive")
    _add_config(p)
    _add_out(p, default=None, help="run directory (default runs/<name>)")
    p.add_argument(
        "--resume", default=None, metavar="RUN", help="continue RUN from checkpoints/last.ckpt"
    )
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("finetune", help="fine-tune a pre-trained model on a task")
    _add_config(p)
    p.add_argument("--from", dest="source", required=True, metavar="RUN_OR_MODEL_DIR")
    _add_out(p, default=None)
    p.add_argument("--resume", default=None, metavar="RUN")
    p.set_defaults(func=_cmd_finetune)

    p = sub.add_parser("evaluate", help="score a model and the baselines on held-out years")
    p.add_argument("model", metavar="MODEL_OR_RUN")
    _add_config(p, required=False)
    p.add_argument("--baselines", default="all", help="'all', 'none' or a comma list")
    p.add_argument(
        "--scratch",
        default=None,
        metavar="RUN",
        help="a network trained from scratch on the same task, scored as 'scratch' "
        "(default for a fine-tuned model: train one with the config's budget)",
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        metavar="K",
        help="also score the first K members of each ensemble (the model, and the scratch "
        "network) one by one, as K seeds, since members differ only by seed: mean and spread "
        "over seeds, in seeds.json; refused when a network has fewer than K members",
    )
    _add_out(p, required=True)
    _add_device(p)
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("predict", help="apply a model to new data and write CF NetCDF")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True, help="a new .nc file (never replaced)")
    p.add_argument(
        "--units",
        choices=("input", "model"),
        default="input",
        help="units of the predictions: the input's (default; converted back when the "
        "input was converted to the model's units) or the model's",
    )
    p.add_argument(
        "--quantiles",
        default="",
        metavar="Q,Q,...",
        help="write the ensemble mean and these quantiles (e.g. 0.05,0.5,0.95) instead of "
        "every member",
    )
    p.add_argument(
        "--samples",
        type=int,
        default=0,
        metavar="N",
        help="MC dropout: N predictions with the network's dropout on, along 'member'",
    )
    _add_device(p)
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("curve", help="data-efficiency curve: fine-tuned against scratch")
    _add_config(p)
    p.add_argument("--from", dest="source", required=True, metavar="PRETRAINED")
    p.add_argument("--fractions", default="0.1,0.25,0.5,1.0")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="train both networks with this many seeds per fraction; report mean and spread",
    )
    p.add_argument(
        "--baselines",
        default="none",
        help="'all', 'none' or a comma list, fitted per fraction; the best is drawn as a line",
    )
    _add_out(p, required=True)
    p.set_defaults(func=_cmd_curve)

    p = sub.add_parser(
        "leads",
        help="skill by lead time: fine-tuned, scratch, persistence, damped persistence and "
        "climatology at each lead",
    )
    _add_config(p)
    p.add_argument("--from", dest="source", required=True, metavar="PRETRAINED")
    p.add_argument(
        "--leads", required=True, help="lead times in time steps, e.g. 1,3,6,9,12 (months)"
    )
    _add_out(p, required=True)
    p.set_defaults(func=_cmd_leads)

    p = sub.add_parser("report", help="write a self-contained HTML report for a run directory")
    p.add_argument("dir")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("demo", help="the whole story on bundled real GCM data")
    _add_out(p, default="runs/demo")
    p.add_argument("--fast", action="store_true", help="same steps, smaller budget (~90 s)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("explain", help="attribution maps and the component interaction matrix")
    p.add_argument("model", metavar="MODEL")
    _add_config(p, required=False)
    p.add_argument(
        "--method", choices=["ig", "saliency", "occlusion", "lime", "shap"], default="ig"
    )
    p.add_argument("--target", default=None, help="e.g. tas or 'tas@lat=30:50,lon=235:260'")
    p.add_argument("--samples", type=int, default=16)
    _add_out(p, required=True)
    _add_device(p)
    p.set_defaults(func=_cmd_explain)

    p = sub.add_parser("tune", help="blocked cross-validation with an Optuna study")
    _add_config(p)
    p.add_argument("--from", dest="source", default=None, metavar="PRETRAINED")
    p.add_argument("--space", required=True)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--storage", default=None, help="default sqlite:///OUT/study.db")
    p.add_argument("--study", default="climatune")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_cmd_tune)
    return parser


def _quiet_libraries() -> None:
    """Keep the terminal for our own messages: Lightning's banners and library deprecation
    notices go away unless ``--debug`` is given."""
    # Lightning resets its package loggers to INFO when it is imported (after this), so
    # the loggers that print its banners are quietened one by one.
    for name in (
        "lightning.pytorch",
        "lightning.fabric",
        "lightning.pytorch.utilities.rank_zero",
        "lightning.fabric.utilities.rank_zero",
        "lightning.pytorch.accelerators.cuda",
    ):
        logging.getLogger(name).setLevel(logging.WARNING)
    for module in ("lightning", "torch", "xarray", "dask", "shap", "captum", "optuna"):
        warnings.filterwarnings("ignore", module=module)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def _one_line(message: str) -> str:
    """``message`` on one line of bounded length: an error names the problem, it never
    prints a whole input back."""
    line = " ".join(message.split())
    if len(line) <= _MAX_ERROR:
        return line
    half = (_MAX_ERROR - 5) // 2  # the end often says how to fix it: keep both ends
    return f"{line[:half]} ... {line[-half:]}"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (0 ok, 1 bug, 2 user error)."""
    argv = sys.argv[1:] if argv is None else argv
    prefer_passive_openmp()  # before any command imports torch
    debug = "--debug" in argv  # a global flag, accepted before or after the subcommand
    argv = [a for a in argv if a != "--debug"]
    if not debug:
        _quiet_libraries()
    try:
        args = build_parser().parse_args(argv)
        func: Callable[[argparse.Namespace], None] | None = getattr(args, "func", None)
        if func is None:
            build_parser().print_help()
            return 0 if not argv else 2
        func(args)
        return 0
    except (ClimatuneError, OSError) as exc:  # an OSError: a full disk, a read-only path, ...
        error = exc if isinstance(exc, ClimatuneError) else os_error(exc)
        if error is None:
            raise
        if debug:
            traceback.print_exc()
        print(f"climatune: error: {_one_line(str(error))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("climatune: interrupted", file=sys.stderr)
        return 130
    except Interrupted as exc:
        print(f"climatune: {exc}{_resume_hint(args, exc)}", file=sys.stderr)
        return exc.exit_code


def _resume_hint(args: argparse.Namespace, exc: Interrupted) -> str:
    """``; resume with: climatune pretrain --config ... --resume RUN`` when there is a checkpoint."""
    if exc.checkpoint is None:
        return ""
    words = ["climatune", args.command]
    if getattr(args, "config", None):
        words += ["--config", args.config]
    for item in getattr(args, "set", None) or []:
        words += ["--set", item]
    if getattr(args, "source", None):
        words += ["--from", args.source]
    words += ["--resume", str(exc.run)]
    return "; resume with: " + " ".join(shlex.quote(str(w)) for w in words)


def _entry() -> None:  # pragma: no cover
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
