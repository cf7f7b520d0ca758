"""``climatune report``: a self-contained page that tells the truth about the numbers."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from climatune.cli import main
from climatune.errors import ClimatuneError
from climatune.report import tables
from climatune.report.collect import PNG_SIGNATURE, read_losses
from climatune.report.html import write_report
from climatune.report.tables import probabilistic_lines


class _Page(HTMLParser):
    """Collects images, links, section ids, metric cells and verdict lines of a report."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.links: list[str] = []
        self.ids: list[str] = []
        self.cells: list[dict] = []  # metric-table cells: model, var, metric, best, text
        self.verdicts: list[tuple[str, str]] = []  # (css class, text)
        self.tds: list[tuple[str, str]] = []  # every td: (class, text)
        self._row_model: str | None = None
        self._td: dict | None = None
        self._verdict: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.append(str(a["id"]))
        if tag == "img":
            self.imgs.append(a)
        elif tag in ("a", "link") and "href" in a:
            self.links.append(str(a["href"]))
        elif tag == "tr":
            self._row_model = None
        elif tag == "td":
            self._td = {"attrs": a, "text": ""}
        elif tag == "p" and "verdict" in (a.get("class") or ""):
            self._verdict = [str(a["class"]), ""]

    def handle_data(self, data: str) -> None:
        if self._td is not None:
            self._td["text"] += data
        if self._verdict is not None:
            self._verdict[1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._td is not None:
            a, text = self._td["attrs"], self._td["text"].strip()
            self.tds.append((a.get("class") or "", text))
            if self._row_model is None:
                self._row_model = text
            elif "data-metric" in a:
                self.cells.append(
                    {
                        "model": self._row_model,
                        "var": a["data-var"],
                        "metric": a["data-metric"],
                        "best": "best" in (a.get("class") or ""),
                        "text": text,
                    }
                )
            self._td = None
        elif tag == "p" and self._verdict is not None:
            self.verdicts.append((self._verdict[0], self._verdict[1]))
            self._verdict = None


@pytest.fixture(scope="module")
def page(rendered: tuple[Path, str]) -> _Page:
    return _Page(rendered[1])


def test_report_is_written_in_the_directory(rendered: tuple[Path, str]) -> None:
    path, text = rendered
    assert path.name == "report.html" and path.is_file()
    assert text.startswith("<!DOCTYPE html>")
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")], "temporary file left"


def test_no_external_resources(rendered: tuple[Path, str], page: _Page) -> None:
    text = rendered[1].lower()
    for needle in (
        'src="http',
        "src='http",
        'href="http',
        "href='http",
        "@import",
        "url(http",
        "url(//",
        "<script",
        "<link",
    ):
        assert needle not in text, needle
    assert all(link.startswith("#") for link in page.links)


def test_every_image_is_an_embedded_png(page: _Page) -> None:
    # 2 maps, loss curves, RMSE bars, data-efficiency curve, 1 attribution, 1 tuning plot.
    assert len(page.imgs) == 7
    for img in page.imgs:
        src = str(img["src"])
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_SIGNATURE)
        assert img.get("alt")


def test_every_present_part_has_its_section(page: _Page) -> None:
    for key in ("summary", "training", "metrics", "maps", "efficiency", "attribution", "tuning"):
        assert key in page.ids


def test_best_value_per_column_is_highlighted(page: _Page) -> None:
    best = {c["metric"]: c["model"] for c in page.cells if c["best"]}
    assert best == {
        "rmse": "bilinear_residual",
        "mae": "bilinear_residual",
        "bias": "scratch",
        "acc": "finetuned",
    }
    assert sum(c["best"] for c in page.cells) == 4  # exactly one per column here
    cell = next(c for c in page.cells if c["model"] == "finetuned" and c["metric"] == "rmse")
    assert cell["text"] == "0.31"
    assert "0.01" not in {c["text"] for c in page.cells}, (
        "the val-split row leaked into the test table"
    )


def test_verdict_says_which_baseline_wins(page: _Page) -> None:
    ((cls, text),) = page.verdicts
    assert "loss" in cls
    assert text.startswith("finetuned: tas RMSE 0.31 K")
    assert "beats scratch (0.36) and 6 of 7 baselines" in text
    assert "loses to bilinear_residual (0.28)" in text


def test_summary_shows_data_and_lineage(rendered: tuple[Path, str]) -> None:
    text = rendered[1]
    for fact in (
        "tas [K] (air_temperature)",
        "4 × 8 cells",
        "360_day",
        "train 1860–1959",
        "train 100",
        "sample://E1_north_america",
        "1860-06-01 → 1999-06-01",
    ):
        assert fact in text, fact
    assert text.index(">pretrain<") < text.index(">finetune<") < text.index(">scratch<")
    assert "pretrain/model" in text  # the fine-tuned run's parent, relative to DIR


def test_curve_table_shows_the_gap(page: _Page, rendered: tuple[Path, str]) -> None:
    assert "fine-tuning beats scratch at 2 of 3 fractions" in rendered[1]
    assert ("bad", "-0.02") in page.tds  # scratch wins with all the data: shown, not hidden
    assert ("", "0.3") in page.tds


def test_interactions_and_tuning(page: _Page, rendered: tuple[Path, str]) -> None:
    assert ("best", "70.0%") in page.tds
    assert "optim.lr" in rendered[1] and "3 trials, 2 complete" in rendered[1]


def test_missing_dir_is_a_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope"
    assert main(["report", str(missing)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("climatune: error:")
    assert "does not exist" in err
    assert not missing.exists()


def test_empty_dir_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(ClimatuneError, match="nothing to report"):
        write_report(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_failed_write_leaves_the_old_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    row = {"model": "finetuned", "variable": "tas", "metric": "rmse", "value": 0.3}
    (tmp_path / "metrics.json").write_text(json.dumps([row]))
    old = "<!DOCTYPE html><title>ClimaTune report: an earlier one</title>"
    (tmp_path / "report.html").write_text(old)  # an earlier report: replaced if the write ends
    original = Path.write_text

    def half_then_fail(self: Path, data: str, *args, **kwargs) -> int:
        original(self, data[: len(data) // 2], *args, **kwargs)
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(Path, "write_text", half_then_fail)
    with pytest.raises(RuntimeError):
        write_report(tmp_path)
    monkeypatch.undo()
    assert (tmp_path / "report.html").read_text() == old
    assert not list(tmp_path.glob(".report.html*"))


def test_unreadable_parts_become_notes(tmp_path: Path, tiny_png) -> None:
    (tmp_path / "metrics.json").write_text("{not json")
    (tmp_path / "map_fake.png").write_text("not a png")
    tiny_png(tmp_path / "map_real.png")
    (tmp_path / "explain").mkdir()
    (tmp_path / "explain" / "interactions.json").write_text(
        json.dumps({"method": "ig", "by_component": {"sst": {"ocean": 0.8, "atmosphere": 0.2}}})
    )
    page = _Page(text := write_report(tmp_path).read_text())
    assert len(page.imgs) == 1
    assert "map_fake.png: not a PNG file" in text and "metrics.json: not readable as JSON" in text
    assert ("best", "80.0%") in page.tds and ">by_component<" in text
    assert {"maps", "attribution", "notes"} <= set(page.ids)
    assert not {"summary", "training", "metrics", "efficiency", "tuning"} & set(page.ids)


def test_symlinks_out_of_the_run_are_never_read(tmp_path: Path, tiny_png) -> None:
    elsewhere, run = tmp_path / "elsewhere", tmp_path / "run"
    (elsewhere / "tune").mkdir(parents=True)
    run.mkdir()
    (run / "metrics.json").write_text(
        json.dumps([{"model": "finetuned", "variable": "tas", "metric": "rmse", "value": 0.3}])
    )
    tiny_png(run / "map_own.png")
    secret = tiny_png(elsewhere / "secret.png", "secret")
    (elsewhere / "config.yaml").write_text("data: {path: SECRET-CONFIG}\n")
    (elsewhere / "tune" / "best.yaml").write_text("params: {SECRET-PARAM: 1}\n")
    (run / "map_secret.png").symlink_to(secret)
    (run / "config.yaml").symlink_to(elsewhere / "config.yaml")
    (run / "tune").symlink_to(elsewhere / "tune")  # a linked folder is not walked either
    (run / "explain").mkdir()
    (run / "explain" / "attributions.png").symlink_to(secret)
    text = write_report(run).read_text()
    page = _Page(text)
    own = base64.b64encode((run / "map_own.png").read_bytes()).decode()
    assert own in text and base64.b64encode(secret.read_bytes()).decode() not in text
    assert len(page.imgs) == 1
    assert "SECRET" not in text
    assert "map_secret.png: a symbolic link or not a file, not read" in text
    assert "explain/attributions.png: a symbolic link" in text


def test_text_from_files_is_escaped(tmp_path: Path) -> None:
    row = {"model": "<img src=x>", "variable": "t&s", "metric": "rmse", "value": 1.0}
    (tmp_path / "metrics.json").write_text(json.dumps([row]))
    text = write_report(tmp_path).read_text()
    assert "<img src=x>" not in text and "&lt;img src=x&gt;" in text and "t&amp;s" in text
    assert not _Page(text).imgs


def test_read_losses_per_epoch(tmp_path: Path) -> None:
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "epoch,step,train_loss_step,val_loss\n0,1,4.0,\n0,2,2.0,\n0,2,,1.5\n1,3,1.0,\n1,4,,0.5\n"
    )
    assert read_losses(csv, []) == {"train": [(0, 3.0), (1, 1.0)], "val": [(0, 1.5), (1, 0.5)]}


@pytest.mark.parametrize(
    ("rmse", "expected", "wins"),
    [
        (
            {"finetuned": 0.2, "scratch": 0.3, "ridge": 0.4, "climatology": 0.5},
            "finetuned: tas RMSE 0.2 K — beats scratch (0.3) and all 2 baselines; "
            "skill 0.84 against climatology",
            True,
        ),
        (
            {"finetuned": 0.6, "scratch": 0.7, "persistence": 0.9, "climatology": 0.5},
            "finetuned: tas RMSE 0.6 K — worse than climatology: not useful at this lead, "
            "whatever else it beats; beats scratch (0.7) and 1 of 2 baselines; loses to "
            "climatology (0.5); "
            "skill -0.44 against climatology",
            False,
        ),
        (
            {"finetuned": 0.4, "damped_persistence": 0.5, "climatology": 0.8},
            "finetuned: tas RMSE 0.4 K — beats all 2 baselines; no scratch run to compare with; "
            "skill 0.36 against damped persistence, 0.75 against climatology",
            True,
        ),
        (
            {"finetuned": 0.35, "scratch": 0.3, "ridge": 0.4},
            "finetuned: tas RMSE 0.35 K — beats the ridge baseline; loses to scratch (0.3)",
            False,
        ),
        (
            {"finetuned": 0.5, "scratch": 0.3, "ridge": 0.4},
            "finetuned: tas RMSE 0.5 K — beats neither scratch nor the baseline; loses to scratch (0.3) and ridge (0.4)",
            False,
        ),
        (
            {"finetuned": 0.3101, "ridge": 0.3104},
            "finetuned: tas RMSE 0.3101 K — beats the ridge baseline; no scratch run to compare with",
            True,
        ),
        ({"ridge": 0.3}, "tas: no network was scored, only baselines", False),
        (
            {"finetuned": 0.2, "scratch": 0.3, "ridge": math.nan},
            "finetuned: tas RMSE 0.2 K — beats scratch (0.3); no baselines were scored; "
            "no finite RMSE for ridge",
            True,
        ),
    ],
)
def test_verdict_is_honest(rmse: dict[str, float], expected: str, wins: bool) -> None:
    rows = [
        {"model": m, "variable": "tas", "metric": "rmse", "value": v, "split": "test"}
        for m, v in rmse.items()
    ]
    table = tables.metric_table(rows)
    assert table is not None
    assert tables.verdict(table, "tas", "K") == (expected, wins)


def test_best_of_rules() -> None:
    assert tables.best_of({"a": math.nan, "b": 2.0, "c": 1.0}, "rmse") == {"c"}
    assert tables.best_of({"a": -0.1, "b": 0.2}, "bias") == {"a"}
    assert tables.best_of({"a": 0.9, "b": 0.9, "c": 0.1}, "acc") == {"a", "b"}
    assert tables.best_of({"a": math.nan}, "skill") == set()


_PROBE = (
    "<script>addEventListener('load',()=>{document.title=JSON.stringify({w:[...document.images]"
    ".map(i=>i.naturalWidth),sw:document.documentElement.scrollWidth,"
    "cw:document.documentElement.clientWidth})})</script>"
)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium")
def test_renders_in_headless_chromium(rendered: tuple[Path, str], tmp_path: Path) -> None:
    """Every image decodes in a real browser and nothing overflows a laptop-wide window.

    A copy of the page gets a probe script (the report itself has none) that writes what
    the browser measured into the title, read back with ``--dump-dom``.
    """
    probe = tmp_path / "probe.html"
    probe.write_text(rendered[1].replace("</body>", _PROBE + "</body>"))
    cmd = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1366,900",
        "--virtual-time-budget=5000",
        "--dump-dom",
        probe.as_uri(),
    ]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
    found = re.search(r"<title>(\{.*?\})</title>", dom)
    assert found, "the probe did not run"
    measured = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(measured["w"]) == 7 and all(w > 0 for w in measured["w"])
    assert measured["sw"] <= measured["cw"], "horizontal overflow at 1366 px"


def test_probabilistic_rows_get_their_own_section(tmp_path: Path) -> None:
    def row(model: str, metric: str, value: float) -> dict:
        return {"model": model, "task": "downscale", "variable": "tas", "metric": metric,
                "value": value, "split": "test"}  # fmt: skip

    rows = [row("finetuned", "rmse", 0.4), row("climatology", "rmse", 1.5)]
    for model, crps, ratio, ranks in (
        ("climatology_dressed", 0.9, 0.8, [0.2, 0.6, 0.2]),
        ("finetuned", 0.25, 0.95, [0.3, 0.35, 0.35]),
        ("climatological_ensemble", 0.8, 0.5, [0.4, 0.2, 0.4]),
    ):
        rows += [row(model, "crps", crps), row(model, "spread_skill", ratio)]
        rows += [row(model, "pit_alpha", 0.1)]
        rows += [row(model, f"rank_hist_{k}", v) for k, v in enumerate(ranks, start=1)]
    (tmp_path / "metrics.json").write_text(json.dumps(rows))
    page = _Page(write_report(tmp_path).read_text())
    assert "probabilistic" in page.ids
    assert {c["metric"] for c in page.cells} == {"rmse"}  # the metric table is unchanged
    tds = [text for _, text in page.tds]
    # the probabilistic table: its network row comes just before the baselines' rows
    start = max(
        i for i, t in enumerate(tds[: tds.index("climatological_ensemble")]) if t == "finetuned"
    )
    assert tds[start : start + 6] == ["finetuned", "0.25", "0.95", "0.1", "0.4", "2"]
    order = [t for t in tds[start:] if t.endswith(("_dressed", "_ensemble"))]
    assert order == ["climatological_ensemble", "climatology_dressed"]  # by CRPS
    dressed = tds.index("climatology_dressed")
    assert tds[dressed + 4] == "1.5"  # its mean is the climatology itself
    assert any("rank histograms" in (img.get("alt") or "") for img in page.imgs)
    assert probabilistic_lines(rows, {"tas": "K"}) == [
        "tas finetuned ensemble: CRPS 0.25 K (best probabilistic baseline "
        "climatological_ensemble: 0.8 K), spread/skill 0.95"
    ]
