"""``climatune demo``: the whole story on bundled real GCM data.

Pre-train a ×4 downscaler on the Met Office A1B run, fine-tune it on the E1 scenario over
western North America with a few decades of data, train the same network from scratch
with the same budget, score all of them and every baseline on 2070–2099, draw the
data-efficiency curve, explain the fine-tuned model's predictions and write the report.
"""

from __future__ import annotations

import json
import time
from importlib import resources
from pathlib import Path

from rich.console import Console

from climatune.config import Config, config_inputs, load_config
from climatune.data.view import build_view
from climatune.evaluation.baselines import baselines_for
from climatune.evaluation.evaluate import evaluate_view, write_metrics
from climatune.evaluation.maps import plot_maps
from climatune.evaluation.seeds import SEEDS_FILE, member_predictions, seed_rows
from climatune.explain.run import explain, write_explanation
from climatune.inference import load_model
from climatune.report.html import write_report
from climatune.report.seeds import seed_lines
from climatune.report.tables import probabilistic_lines, verdicts
from climatune.utils.atomic import atomic_path, prepare_output_dir, releases_outputs
from climatune.workflows.curve import curve_command
from climatune.workflows.finetuning import finetune
from climatune.workflows.pretraining import pretrain, train_scratch

__all__ = ["run_demo", "demo_configs"]

#: Budgets: (pre-training epochs, fine-tuning epochs, curve fractions, members of the
#: fine-tuned and the scratch ensembles; the pre-trained model is one network). The curve
#: trains ensembles of as many members at each fraction; ``--fast`` (the tests) two.
_BUDGET = {False: (30, 30, "0.25,0.5,1.0", 3), True: (6, 8, "0.5,1.0", 2)}


def demo_configs(fast: bool = False) -> tuple[Config, Config]:
    """The pre-training and fine-tuning configs (``examples/a1b``), with the demo's budget."""
    root = resources.files("climatune") / "examples" / "a1b"
    pre_epochs, ft_epochs, _, members = _BUDGET[fast]
    common = ["trainer.progress_bar=false"]
    pre = load_config(
        Path(str(root / "pretrain.yaml")), [f"trainer.max_epochs={pre_epochs}", *common]
    )
    ft = load_config(
        Path(str(root / "finetune.yaml")),
        [
            f"trainer.max_epochs={ft_epochs}",
            f"ensemble.members={members}",
            *common,
        ],
    )
    return pre, ft


@releases_outputs
def run_demo(out: str | Path = "runs/demo", fast: bool = False, overwrite: bool = False) -> Path:
    """Run every step under ``out``; returns the path of ``report.html``.

    ``overwrite`` replaces an earlier demo at ``out``; any other non-empty ``out`` is refused.
    """
    console = Console(stderr=True, highlight=False)
    pre_cfg, ft_cfg = demo_configs(fast)
    inputs = [*config_inputs(pre_cfg), *config_inputs(ft_cfg)]
    out = prepare_output_dir(out, command="demo", inputs=inputs, overwrite=overwrite)
    start = time.perf_counter()

    def step(msg: str) -> None:
        console.print(f"[bold cyan][{time.perf_counter() - start:5.0f} s][/bold cyan] {msg}")

    step("pre-training a ×4 downscaler on A1B (1860–2059) …")
    pretrain(pre_cfg, out=out / "pretrain")
    step("fine-tuning on E1, western North America, 2000–2049 …")
    view = build_view(ft_cfg.data, ft_cfg.task)
    finetune(ft_cfg, out / "pretrain", out=out / "finetune", view=view)
    step("training the same network from scratch, same data and budget …")
    train_scratch(ft_cfg, view, out / "scratch")
    step("scoring on the held-out years 2070–2099 against every baseline …")
    models = {"finetuned": load_model(out / "finetune"), "scratch": load_model(out / "scratch")}
    rows, preds = evaluate_view(view, models, baselines_for(view.kind))
    write_metrics(rows, out)
    truth = view.truth("test")
    for label in ("finetuned", "scratch", "bilinear_residual"):
        plot_maps(preds[label], truth, out, label=label, weights=view.weights())
    rmse = {r["model"]: r["value"] for r in rows if r["metric"] == "rmse"}
    for model, value in sorted(rmse.items(), key=lambda kv: kv[1]):
        console.print(f"    {model:<18} test RMSE {value:.3f} K")
    units = {v: str(view.fields[v].attrs.get("units", "")) for v in view.targets}
    # the members differ only by seed: each scored alone gives the spread over seeds
    members = member_predictions(models, view, ft_cfg.ensemble.members)
    over = seed_rows(view, members, {k: v for k, v in preds.items() if k not in models})
    with atomic_path(out / SEEDS_FILE) as tmp:
        tmp.write_text(json.dumps(over, indent=2))
    lines = verdicts(rows, units) + probabilistic_lines(rows, units) + seed_lines(over, units)
    for line in lines:
        console.print(f"    {line}", markup=False, soft_wrap=True)
    step("data-efficiency curve …")
    curve_command(
        ft_cfg,
        out / "pretrain",
        _BUDGET[fast][2],
        out,
        done={1.0: (out / "finetune", out / "scratch")},
    )
    step("explaining the fine-tuned model (integrated gradients) …")
    tuned = models["finetuned"]
    expl = explain(tuned, view, method="ig", samples=16, components=dict(ft_cfg.explain.components))
    (out / "explain").mkdir()
    write_explanation(expl, tuned, out / "explain")
    report = write_report(out)
    step(f"done: {report}")
    return report
