"""The widget script, a demo page per tenant, the tickets' status page and the dashboard, served
from the package's static/ folder."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse

from gateway.runtime import GatewayRuntime
from gateway.tickets import claimed_link_tenant
from servicekit.http import ApiError

STATIC = Path(__file__).resolve().parent / "static"

router = APIRouter(tags=["static"])


@router.get("/widget.js", include_in_schema=False)
async def widget_js() -> FileResponse:
    # Short cache: a new release reaches embedded widgets within minutes.
    return FileResponse(
        STATIC / "widget.js", media_type="application/javascript", headers={"Cache-Control": "public, max-age=300"}
    )


# The Lucine di Natale demo is a copy of that site; any other tenant's widget is shown on a plain
# page named after the tenant, never on another business's site.
SITE_PAGES = {"lucine-di-natale": "demo.html"}
PLAIN_PAGE = "demo-tenant.html"
# The plain page's words, in the tenant's default language (English for one without them).
PLAIN_PAGE_TEXTS = {
    "it": {
        "__PAGE_TITLE__": "{name} — pagina di prova",
        "__EYEBROW__": "Pagina di prova",
        "__INTRO__": "Questa pagina mostra il widget di assistenza di {name}. Apri la chat con il pulsante in "
        "basso: l'assistente risponde subito e, se serve, ti passa a una persona.",
    },
    "en": {
        "__PAGE_TITLE__": "{name} — demo page",
        "__EYEBROW__": "Demo page",
        "__INTRO__": "This page shows the support widget of {name}. Open the chat with the button at the bottom "
        "of the screen: the assistant answers right away and, when needed, hands you over to a person.",
    },
}
PLACEHOLDER = re.compile(r"__[A-Z_]+__")


def fill(page: str, values: Mapping[str, str]) -> str:
    """The page with its placeholders replaced by the values, escaped, in one pass: a value that
    reads like a placeholder (a tenant's name, say) is left as it is."""
    return PLACEHOLDER.sub(lambda m: html.escape(values[m[0]]) if m[0] in values else m[0], page)


@router.get("/demo/{tenant_id}", include_in_schema=False, response_class=HTMLResponse)
async def demo_page(tenant_id: str, request: Request) -> HTMLResponse:
    runtime: GatewayRuntime = request.app.state.runtime
    tenant = await runtime.tenants.by_id(tenant_id)
    if tenant is None:
        raise ApiError(404, "not_found", f"unknown tenant {tenant_id}")
    values = {
        "__WIDGET_KEY__": tenant.widget_key,
        "__TENANT_NAME__": tenant.name,
        "__GATEWAY_URL__": runtime.config.public_base_url.rstrip("/"),
    }
    site = SITE_PAGES.get(tenant.tenant_id)
    if site is None:
        lang = tenant.default_language if tenant.default_language in PLAIN_PAGE_TEXTS else "en"
        texts = {key: text.format(name=tenant.name) for key, text in PLAIN_PAGE_TEXTS[lang].items()}
        values |= texts | {"__LANG__": lang}
    page = (STATIC / (site or PLAIN_PAGE)).read_text(encoding="utf-8")
    return HTMLResponse(fill(page, values), headers={"Cache-Control": "no-store"})


# The status page names only its own origin: no outside script, style, image or frame; and as its
# address may carry a status link's token, it sends no Referer anywhere.
STATUS_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
}


@router.get("/tickets/status", include_in_schema=False, response_class=HTMLResponse)
async def ticket_status_page(
    request: Request, tenant: str | None = None, key: str | None = None, t: str | None = None
) -> HTMLResponse:
    """The public status page of a ticket: opened from a tenant's site (`?tenant=<tenant_id>` or
    `?key=<widget key>`, which names the tenant for the lookup by number) or from the signed link
    of an email (`?t=<token>`, which needs neither). The page is of the tenant the link names
    (read unchecked: a link that turns out bad, expired or cut then still offers that tenant's
    lookup form), else of `tenant` or `key`; an unknown tenant leaves the form out."""
    runtime: GatewayRuntime = request.app.state.runtime
    found = None
    claimed = claimed_link_tenant(t[:1000]) if t else None
    if claimed:
        found = await runtime.tenants.by_id(claimed[:100])
    if found is None and tenant:
        found = await runtime.tenants.by_id(tenant[:100])
    elif found is None and key:
        found = await runtime.tenants.by_key(key[:200])
    page = (STATIC / "ticket-status.html").read_text(encoding="utf-8")
    values = {"__WIDGET_KEY__": found.widget_key if found else "", "__TENANT_NAME__": found.name if found else ""}
    return HTMLResponse(fill(page, values), headers=STATUS_PAGE_HEADERS)


@router.get("/tickets/status.js", include_in_schema=False)
async def ticket_status_js() -> FileResponse:
    return FileResponse(
        STATIC / "ticket-status.js", media_type="text/javascript; charset=utf-8", headers={"Cache-Control": "no-cache"}
    )


DASHBOARD = STATIC / "dashboard"
VENDOR = STATIC / "vendor"
DASHBOARD_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
}


# The pages opened without an account. Their address may carry a link's token (`?t=`): it is sent
# to no other site (no Referer) and the page is never cached.
PUBLIC_PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@router.get("/dashboard/signup", include_in_schema=False)
@router.get("/dashboard/verify", include_in_schema=False)
@router.get("/dashboard/invite", include_in_schema=False)
async def dashboard_public_page() -> FileResponse:
    """Sign-up, the sign-up's email verification and an invitation: one small page (public.js)
    that needs no login and picks its form from the path."""
    return FileResponse(DASHBOARD / "public.html", media_type=DASHBOARD_TYPES[".html"], headers=PUBLIC_PAGE_HEADERS)


@router.get("/dashboard", include_in_schema=False)
@router.get("/dashboard/{asset:path}", include_in_schema=False)
async def dashboard(asset: str = "") -> FileResponse:
    """The operator dashboard (static/dashboard) and its vendored library (static/vendor, as
    /dashboard/vendor/...). Only files of those two folders with a known type are served."""
    root, name = (VENDOR, asset.removeprefix("vendor/")) if asset.startswith("vendor/") else (DASHBOARD, asset)
    path = (root / (name or "index.html")).resolve()
    media_type = DASHBOARD_TYPES.get(path.suffix)
    if media_type is None or not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, "not_found", "no such file")
    # The page is re-read on every load; its modules are revalidated (no stale code after a release).
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})
