"""Writes a simple text PDF (what a tenant's office software would export), with no PDF library.

    .venv/bin/python services/ai-responder/scripts/make_pdf.py SOURCE.txt OUT.pdf

SOURCE is plain text: `# ` starts a heading, a blank line ends a paragraph, a line holding only
`\\f` starts a new page. Text is set in Helvetica with WinAnsi encoding (Italian accents and the euro
sign print), wrapped to the page width. The demo tenant's PDF is made with it, so it is a real PDF
that any reader (pypdf included) extracts text from.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

PAGE_W, PAGE_H, MARGIN = 595, 842, 56
BODY, HEADING, LEADING = 11, 14, 15


def _escape(text: str) -> bytes:
    raw = text.encode("cp1252")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def layout(source: str) -> list[list[tuple[str, int, str]]]:
    """Pages of (font, size, line)."""
    pages: list[list[tuple[str, int, str]]] = [[]]
    y = PAGE_H - MARGIN
    for block in source.split("\n\n"):
        block = block.strip("\n")
        if block.strip() == "\\f":
            pages.append([])
            y = PAGE_H - MARGIN
            continue
        if not block.strip():
            continue
        if block.startswith("# "):
            lines = [("F2", HEADING, block[2:].strip())]
        else:
            lines = [("F1", BODY, wrapped) for part in block.splitlines() for wrapped in textwrap.wrap(part, 88)]
        for font, size, line in lines:
            if y < MARGIN + LEADING:
                pages.append([])
                y = PAGE_H - MARGIN
            pages[-1].append((font, size, line))
            y -= LEADING + (6 if font == "F2" else 0)
        y -= LEADING // 2
        pages[-1].append(("", 0, ""))  # paragraph gap
    return [page for page in pages if page]


def write_pdf(source: str) -> bytes:
    objects: list[bytes] = []
    pages = layout(source)
    # 1 catalog, 2 pages, 3 regular font, 4 bold font, then a page and its content per page.
    kids = " ".join(f"{5 + 2 * i} 0 R" for i in range(len(pages)))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    for name in ("Helvetica", "Helvetica-Bold"):
        objects.append(f"<< /Type /Font /Subtype /Type1 /BaseFont /{name} /Encoding /WinAnsiEncoding >>".encode())
    for i, page in enumerate(pages):
        stream = [b"BT", f"{MARGIN} {PAGE_H - MARGIN} Td".encode()]
        for font, size, line in page:
            if not font:
                stream.append(f"0 -{LEADING // 2} Td".encode())
                continue
            stream.append(f"/{font} {size} Tf".encode())
            stream.append(b"(" + _escape(line) + b") Tj")
            stream.append(f"0 -{LEADING + (6 if font == 'F2' else 0)} Td".encode())
        stream.append(b"ET")
        content = b"\n".join(stream)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {PAGE_W} {PAGE_H}] "
            f"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> /Contents {6 + 2 * i} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(content)} >>\nstream\n".encode() + content + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    Path(argv[2]).write_bytes(write_pdf(Path(argv[1]).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
