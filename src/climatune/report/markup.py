"""HTML building blocks of the report: escaped tables, embedded figures, fact lists.

Every piece of text from the run directory goes through :func:`html.escape` here or in the
callers; images become ``data:`` URIs so that the page needs no other file.
"""

from __future__ import annotations

import html
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

from climatune.report.collect import Found
from climatune.report.figures import data_uri

__all__ = ["Cell", "esc", "table", "figure", "figure_file", "gallery", "facts", "png_size"]

esc = html.escape
Cell = str | tuple[str, str]  # escaped text, or (escaped text, css class)


def table(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """A table in a horizontally scrolling wrapper.

    Cells are escaped HTML or ``(html, css_class)``; the first column is left-aligned, and
    headers align with their column's first cell.
    """
    rows = list(rows)
    first = rows[0] if rows else []
    left = {
        j for j, c in enumerate(first) if j == 0 or (isinstance(c, tuple) and c[1] in ("l", "w"))
    }
    head = "".join(
        f'<th class="l">{h}</th>' if i in left else f"<th>{h}</th>" for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = []
        for j, cell in enumerate(row):
            text, cls = cell if isinstance(cell, tuple) else (cell, "l" if j == 0 else "")
            cells.append(f'<td class="{cls}">{text}</td>' if cls else f"<td>{text}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def png_size(png: bytes) -> tuple[int, int] | None:
    """``(width, height)`` from a PNG's header, or ``None``."""
    if len(png) >= 24 and png[12:16] == b"IHDR":
        w, h = struct.unpack(">II", png[16:24])
        return w, h
    return None


def figure(png: bytes, alt: str, caption: str = "") -> str:
    """An embedded PNG with its intrinsic size (no layout shift) and an optional caption."""
    size = png_size(png)
    dims = f' width="{size[0]}" height="{size[1]}"' if size else ""
    cap = f"<figcaption>{esc(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{data_uri(png)}" alt="{esc(alt)}"{dims}>{cap}</figure>'


def figure_file(path: Path, found: Found) -> str:
    """:func:`figure` for a PNG file, captioned with its path inside the report's directory."""
    try:
        png = path.read_bytes()
    except OSError as exc:
        found.notes.append(f"{found.rel(path)}: unreadable ({exc.strerror})")
        return ""
    return figure(png, path.stem.replace("_", " "), found.rel(path))


def gallery(paths: Sequence[Path], found: Found) -> str:
    """Several figures in a responsive grid (one column on a narrow screen)."""
    items = "".join(figure_file(p, found) for p in paths)
    return f'<div class="gallery">{items}</div>' if len(paths) > 1 else items


def facts(items: Iterable[tuple[str, str]]) -> str:
    """A two-column list of ``(label, value)`` pairs; empty values are left out."""
    body = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items if v)
    return f'<dl class="facts">{body}</dl>' if body else ""
