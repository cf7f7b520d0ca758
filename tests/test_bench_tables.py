"""bench/run.py's bookkeeping: rows merge by name, and CPU and GPU tables stay apart."""

from __future__ import annotations

import pytest

bench = pytest.importorskip("bench.run")


def _row(name: str, value: float) -> dict:
    return {"name": name, "value": value, "target": 1.0, "better": "higher", "unit": "ratio"}


def test_merge_replaces_remeasured_rows_and_keeps_the_rest():
    old = [_row("loader_vs_naive", 30.0), _row("gpu_bf16_b16_samples_per_s", 900.0)]
    new = [_row("loader_vs_naive", 80.0)]
    merged = bench.merge(old, new)
    assert {r["name"]: r["value"] for r in merged} == {
        "loader_vs_naive": 80.0,
        "gpu_bf16_b16_samples_per_s": 900.0,
    }


def test_cpu_and_gpu_tables_are_written_between_their_own_markers(tmp_path, monkeypatch):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n\nNotes stay.\n")
    monkeypatch.setattr(bench, "DOC", doc)
    meta = {"command": "make bench", "date": "d", "duration": "1 min", "machine": "m"}
    bench._write_doc(bench.render_table([_row("a", 2.0)], meta), "cpu")
    bench._write_doc(bench.render_table([_row("gpu_x", 0.5)], meta, "gpu"), "gpu")
    bench._write_doc(bench.render_table([_row("a", 3.0)], meta), "cpu")
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\nNotes stay.\n")
    cpu = text.split("<!-- bench:begin -->")[1].split("<!-- bench:end -->")[0]
    gpu = text.split("<!-- bench-gpu:begin -->")[1].split("<!-- bench-gpu:end -->")[0]
    assert "| a | 3 |" in cpu and "| a | 2 |" not in text and "met" in cpu
    assert "| gpu_x | 0.5 |" in gpu and "**missed**" in gpu
