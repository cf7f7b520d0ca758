"""Run ClimaTune's benchmarks; write ``bench/results.json`` and the table in ``BENCHMARKS.md``.

``python bench/run.py`` (``make bench``) runs everything in about 10 minutes on a quiet
machine, once the data stores under ``bench/_data`` exist (the first run writes them);
``--quick`` (``make bench-quick``) runs a reduced version in about a minute. ``--only``
runs some sections, e.g. ``--only loader,memory``, and updates only their rows.

``vartoken`` times the variable-token ViT's CPU training step against the matmul peak;
``foundation`` (``python bench/run.py --only foundation``) trains ``examples/foundation``
through Lightning on a GPU against the bf16 matmul peak.

The ``gpu``, ``gpu_breakdown`` and ``foundation`` sections run where torch sees a CUDA GPU; their rows
(named ``gpu_*``) have their own table in ``BENCHMARKS.md``, with the GPU machine, and
are kept when a later run on a machine without a GPU rewrites the CPU table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from _common import DATA, FULL, QUICK, ROOT, Sizes, synthetic_store  # noqa: E402

__all__ = ["main", "render_table"]

SECTIONS = (
    "training",
    "efficiency",
    "loader",
    "memory",
    "ddp",
    "gpu",
    "gpu_breakdown",
    "vartoken",
    "foundation",
)
RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "BENCHMARKS.md"
MARKERS = {
    "cpu": ("<!-- bench:begin -->", "<!-- bench:end -->"),
    "gpu": ("<!-- bench-gpu:begin -->", "<!-- bench-gpu:end -->"),
}


def _status(r: dict[str, Any]) -> str:
    if r["target"] is None or r["value"] is None:
        return ""
    ok = r["value"] >= r["target"] if r["better"] == "higher" else r["value"] <= r["target"]
    return "met" if ok else "**missed**"


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def render_table(rows: list[dict[str, Any]], meta: dict[str, str], block: str = "cpu") -> str:
    """The Markdown block between ``block``'s markers: command, machine, one line per figure."""
    begin, end = MARKERS[block]
    lines = [
        begin,
        "",
        f"Command: `{meta['command']}` ({meta['date']}, {meta['duration']})",
        "",
        f"Machine: {meta['machine']}",
        "",
        "| figure | value | unit | target | status |",
        "|---|---:|---|---:|---|",
    ]
    for r in rows:
        target = (
            ""
            if r["target"] is None
            else ("≥ " if r["better"] == "higher" else "≤ ") + _fmt(r["target"])
        )
        lines.append(
            f"| {r['name']} | {_fmt(r['value'])} | {r['unit']} | {target} | {_status(r)} |"
        )
    return "\n".join([*lines, "", end])


def _machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    gpu = ""
    if torch.cuda.is_available():
        gpu = f"; {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}"
    return (
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), load average "
        f"{load} at start; torch {torch.__version__}, {torch.get_num_threads()} torch threads; "
        f"Python {platform.python_version()}{gpu}"
    )


def _write_doc(table: str, block: str) -> None:
    begin, end = MARKERS[block]
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if begin not in text or end not in text:
        text = text.rstrip() + f"\n\n{begin}\n{end}\n"
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    tmp = DOC.with_suffix(".md.tmp")
    tmp.write_text(head + table + tail)
    tmp.replace(DOC)


def is_gpu(r: dict[str, Any]) -> bool:
    return r["name"].startswith("gpu_")


def merge(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``new`` rows, then the ``old`` rows not measured again in this run."""
    names = {r["name"] for r in new}
    return [*new, *(r for r in old if r["name"] not in names)]


def run(sz: Sizes, only: set[str]) -> list[dict[str, Any]]:
    """Run the chosen sections in order; each prints its rows as it finishes."""
    from _common import bare_rate, new_task, training_flops
    from _ddp import ddp
    from _foundation import foundation, vartoken
    from _loader import loader
    from _memory import memory
    from _training import efficiency, first_batch, gpu, gpu_breakdown, overhead, training_setup

    rows: list[dict[str, Any]] = []
    need_setup = only & {"training", "efficiency", "loader", "gpu", "gpu_breakdown"}
    setup = training_setup(sz) if need_setup else None
    pixels = (64 * 128) / (sz.train_grid[0] * sz.train_grid[1])  # U-Net cost grows with the grid
    train_rate: float | None = None  # samples/s of CPU training, at 64x128
    per_sample: float | None = None  # training FLOPs per sample of the training grid

    def flops() -> float:
        nonlocal per_sample
        if per_sample is None:
            cfg, view, norm = setup
            per_sample = (
                training_flops(new_task(cfg, view), first_batch(cfg, view, norm)) / sz.batch
            )
        return per_sample

    for section in SECTIONS:
        if section not in only:
            continue
        t = time.perf_counter()
        print(f"[{section}]", flush=True)
        if section == "training":
            got, lit = overhead(sz, setup)
            train_rate = lit / pixels
        elif section == "efficiency":
            got, per_sample = efficiency(sz, setup)
        elif section == "loader":
            if train_rate is None:
                cfg, view, norm = setup
                train_rate = bare_rate(cfg, view, norm, 1, 2) / pixels
            got = loader(sz, train_rate, flops() * pixels)
        elif section == "memory":
            got = memory(sz)
        elif section == "ddp":
            synthetic_store("monthly", sz.train_years, sz.train_grid)
            got = ddp(sz)
        elif section == "gpu":
            got = gpu(sz, flops())
        elif section == "vartoken":
            got = vartoken(sz)
        elif section == "foundation":
            got = foundation(sz)
        else:
            got = gpu_breakdown(sz, flops())
        for r in got:
            print(
                f"  {r['name']:<44} {_fmt(r['value']):>10}  {r['unit']}  {_status(r)}", flush=True
            )
        print(f"  ({time.perf_counter() - t:.0f} s)", flush=True)
        rows += got
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a reduced run of about a minute")
    parser.add_argument(
        "--only",
        default=",".join(SECTIONS),
        help=f"comma-separated sections of: {', '.join(SECTIONS)}",
    )
    args = parser.parse_args(argv)
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    DATA.mkdir(parents=True, exist_ok=True)
    machine, start = _machine(), time.perf_counter()
    rows = run(QUICK if args.quick else FULL, only)
    meta = {
        "command": "make bench-quick" if args.quick else "make bench",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "duration": f"{(time.perf_counter() - start) / 60:.1f} min",
        "machine": machine,
    }
    if only != set(SECTIONS):
        quick = " --quick" if args.quick else ""
        meta["command"] = f"python bench/run.py{quick} --only {args.only}"
    old = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    if only == set(SECTIONS):  # a whole run replaces the CPU rows; GPU rows stay
        old = [r for r in old if is_gpu(r)]
    merged = merge(old, rows)
    RESULTS.write_text(json.dumps(merged, indent=2) + "\n")
    for block, pick in (("cpu", lambda r: not is_gpu(r)), ("gpu", is_gpu)):
        if any(pick(r) for r in rows):
            _write_doc(render_table([r for r in merged if pick(r)], meta, block), block)
    missed = [r["name"] for r in rows if _status(r) == "**missed**"]
    print(
        f"wrote {RESULTS.relative_to(ROOT)} and {DOC.name}; missed: {', '.join(missed) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
