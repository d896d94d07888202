"""The dashboard's knowledge-base module (static/dashboard/kb.js, kb.css): served, parsed by node,
both languages with every word, no HTML built from strings. The page itself runs in a real
Chromium against the whole system in tests/e2e/test_kb_dashboard_browser.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
from fastapi import FastAPI

from gateway import web

DASHBOARD = Path(__file__).resolve().parents[1] / "src" / "gateway" / "static" / "dashboard"
LIBRARY_IMPORT = 'import { html, useEffect, useRef, useState } from "/dashboard/vendor/preact-htm.module.js";'
SINKS = ["innerHTML", "outerHTML", "insertAdjacentHTML", "dangerouslySetInnerHTML", "eval(", "new Function"]


async def test_the_module_and_its_styles_are_served() -> None:
    app = FastAPI()
    app.include_router(web.router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway.test") as client:
        for path, kind in [("/dashboard/kb.js", "text/javascript"), ("/dashboard/kb.css", "text/css")]:
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith(kind), path
    app_js = (DASHBOARD / "app.js").read_text(encoding="utf-8")
    assert 'import { KnowledgeView } from "/dashboard/kb.js";' in app_js


def test_no_html_is_built_from_strings() -> None:
    source = (DASHBOARD / "kb.js").read_text(encoding="utf-8")
    for sink in SINKS:
        assert sink not in source, sink


def test_it_parses_and_both_languages_have_every_word(tmp_path: Path) -> None:
    node = shutil.which("node")
    assert node, "node is required to read the dashboard's modules"
    source = (DASHBOARD / "kb.js").read_text(encoding="utf-8")
    assert LIBRARY_IMPORT in source
    # The vendored library is imported by its URL path: node gets stand-ins of the four names.
    stub = "const html = () => null, useEffect = () => {}, useRef = () => ({}), useState = (v) => [v, () => {}];"
    module = tmp_path / "kb.mjs"
    # Its own modules are imported by URL path too: the dashboard's words module sits beside it.
    (tmp_path / "i18n.mjs").write_text((DASHBOARD / "i18n.js").read_text(encoding="utf-8"), encoding="utf-8")
    source = source.replace(LIBRARY_IMPORT, stub).replace('"/dashboard/i18n.js"', '"./i18n.mjs"')
    module.write_text(source, encoding="utf-8")
    script = (
        "import(process.argv[1]).then(m => { const { it, en } = m.WORDS;"
        " const keys = o => Object.keys(o).sort().join(',');"
        " console.log(JSON.stringify({same: keys(it) === keys(en),"
        " nested: ['changes', 'reasons'].every(k => keys(it[k]) === keys(en[k])),"
        " view: typeof m.KnowledgeView})); })"
    )
    result = subprocess.run(
        [node, "--input-type=module", "-e", script, module.as_uri()], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"same": True, "nested": True, "view": "function"}
