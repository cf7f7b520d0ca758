"""``climatune report DIR``: one self-contained HTML page for a run, evaluate or demo directory.

Images are embedded as base64 PNG, the CSS is inline, and nothing is fetched, so the file
opens from disk, offline, on any machine. Every section is optional: the report shows
what the directory holds and says what it skipped.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from climatune import __version__
from climatune.errors import ClimatuneError
from climatune.report.collect import Found, scan
from climatune.report.markup import esc as _e
from climatune.report.sections import SECTIONS
from climatune.utils.atomic import atomic_path

__all__ = ["write_report", "render_report", "REPORT_NAME"]

REPORT_NAME = "report.html"
_TITLE = "ClimaTune report: "

_CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--head:#f6f8fa;--win:#dafbe1;--winline:#1a7f37;
--loss:#ffebe9;--lossline:#cf222e}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:#fff;
font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 56px}
h1{font-size:1.7rem;margin:0 0 2px}
h2{font-size:1.3rem;margin:38px 0 10px;padding-bottom:4px;border-bottom:1px solid var(--line)}
h3{font-size:1.05rem;margin:22px 0 6px}
p{margin:6px 0}.muted,figcaption,.note{color:var(--muted)}.note{font-size:.88rem}
nav{margin:10px 0 0;font-size:.92rem}nav a{margin-right:14px;color:#0969da;text-decoration:none}
.scroll{overflow-x:auto;max-width:100%;margin:8px 0 14px}
table{border-collapse:collapse;font-size:.9rem;font-variant-numeric:tabular-nums}
th,td{border:1px solid var(--line);padding:4px 9px;text-align:right;white-space:nowrap}
th{background:var(--head);font-weight:600}th.l,td.l{text-align:left}th.c{text-align:center}
td.w{text-align:left;white-space:normal;min-width:8ch;max-width:40ch;overflow-wrap:break-word}
tr.net td:first-child{font-weight:600}
table.metrics tbody td:first-child,table.metrics thead tr:first-child th:first-child{position:sticky;left:0;z-index:1}
table.metrics tbody td:first-child{background:#fff}
td.best{background:var(--win);font-weight:700}td.bad{background:var(--loss)}
.verdict{margin:8px 0;padding:8px 12px;border-left:4px solid var(--winline);background:var(--win);border-radius:4px}
.verdict.loss{border-color:var(--lossline);background:var(--loss)}
dl.facts{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 18px;margin:8px 0}
dt{color:var(--muted)}dd{margin:0;overflow-wrap:anywhere}
figure{margin:10px 0 18px}figcaption{font-size:.85rem}
figure img{display:block;max-width:100%;height:auto;border:1px solid var(--line)}
.gallery{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr));gap:6px 18px}
details{margin:8px 0}summary{cursor:pointer;color:var(--muted)}
pre{background:var(--head);padding:10px 12px;overflow:auto;max-height:460px;font-size:.82rem}
code{overflow-wrap:anywhere}
"""


def render_report(found: Found) -> str:
    """The report page for what :func:`~climatune.report.collect.scan` found, as HTML text."""
    sections = [(key, title, build(found)) for key, title, build in SECTIONS]
    sections = [s for s in sections if s[2]]
    if found.notes:
        notes = "".join(f"<li>{_e(n)}</li>" for n in dict.fromkeys(found.notes))
        sections.append(("notes", "Skipped", f'<ul class="note">{notes}</ul>'))
    nav = "".join(f'<a href="#{key}">{_e(title)}</a>' for key, title, _ in sections)
    body = "".join(
        f'<section id="{key}"><h2>{_e(title)}</h2>{content}</section>'
        for key, title, content in sections
    )
    stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    name = found.root.resolve().name or str(found.root)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_TITLE}{_e(name)}</title><style>{_CSS}</style></head>"
        f"<body><main><header><h1>ClimaTune report: {_e(name)}</h1>"
        f'<p class="muted">{_e(str(found.root.resolve()))} · generated {_e(stamp)} · climatune {_e(__version__)}</p>'
        f"<nav>{nav}</nav></header>{body}</main></body></html>\n"
    )


def _is_report(path: Path) -> bool:
    """Whether ``path`` is a report this command wrote (a regular file, our title near the top)."""
    if path.is_symlink() or not path.is_file():
        return False
    with path.open("rb") as fh:
        return _TITLE.encode() in fh.read(1024)


def write_report(directory: str | Path) -> Path:
    """Write ``DIR/report.html`` atomically and return its path.

    Raises
    ------
    ClimatuneError
        If ``directory`` does not exist, is not a directory or holds nothing to report.
    """
    root = Path(directory)
    if not root.exists():
        raise ClimatuneError(f"{root} does not exist; give a run, evaluate or demo directory")
    if not root.is_dir():
        raise ClimatuneError(f"{root} is a file; give the directory that holds the run's outputs")
    found = scan(root)
    if found.empty:
        raise ClimatuneError(
            f"nothing to report in {root}: no config.yaml, model/, logs/metrics.csv, metrics.json, map_*.png, "
            "curve.json, leads.json, explain/ or tune/ found; give a run, evaluate or demo directory"
        )
    out = root / REPORT_NAME
    if (out.exists() or out.is_symlink()) and not _is_report(out):
        raise ClimatuneError(
            f"{out} exists and is not a ClimaTune report; move it away to write the report"
        )
    page = render_report(found)
    with atomic_path(out) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return out
