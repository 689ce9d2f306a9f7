"""GraphiQL served by the API itself, with no request leaving its origin (SPEC §19).

Strawberry's own page loads React, GraphiQL and its explorer plugin from a public CDN: without
internet access, behind a firm's proxy that blocks CDNs, or under a strict content-security
policy, it stays on "Loading...". This page loads the same libraries, pinned and committed under
`vendor/` with their licenses (`assets.py`), plus its own `static/` files, all from
`/graphiql/...` on this server. It has no inline script or style, so a policy of
`script-src 'self'` allows it.
"""

from __future__ import annotations

from pathlib import Path
from string import Template

from aiohttp import web

from graphql_api.graphiql.assets import LICENSE_FOLDERS, VENDOR_DIR, VENDORED

BASE_PATH = "/graphiql"
STATIC_DIR = Path(__file__).parent / "static"
OWN_FILES = ("start.js", "page.css", "favicon.svg")
CONTENT_TYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    "": "text/plain",  # LICENSE
}
# Vendored paths name their version: a browser may keep them. The page's own files may change
# with any release, so they are revalidated.
VENDOR_CACHE = "public, max-age=31536000, immutable"
OWN_CACHE = "no-cache"


def _served_files() -> dict[str, tuple[Path, str]]:
    """URL path below BASE_PATH -> (file, Cache-Control); nothing else is ever served."""
    files = {name: (STATIC_DIR / name, OWN_CACHE) for name in OWN_FILES}
    files.update({f.url_path: (f.path, VENDOR_CACHE) for f in VENDORED})
    files.update(
        {
            f"vendor/{folder}/LICENSE": (VENDOR_DIR / folder / "LICENSE", VENDOR_CACHE)
            for folder in LICENSE_FOLDERS
        }
    )
    return files


SERVED = _served_files()


def render_page() -> str:
    """The page's HTML: every vendored file with its subresource integrity."""
    tags = []
    for file in VENDORED:
        url = f"{BASE_PATH}/{file.url_path}"
        if file.name.endswith(".css"):
            tags.append(f'    <link rel="stylesheet" href="{url}" integrity="{file.integrity}" />')
        else:
            tags.append(f'    <script src="{url}" integrity="{file.integrity}"></script>')
    template = Template((STATIC_DIR / "graphiql.html").read_text(encoding="utf-8"))
    return template.substitute(
        base=BASE_PATH,
        styles="\n".join(t for t in tags if t.startswith("    <link")),
        scripts="\n".join(t for t in tags if t.startswith("    <script")),
    )


PAGE = render_page()


async def serve_file(request: web.Request) -> web.StreamResponse:
    served = SERVED.get(request.match_info["name"])
    if served is None:
        raise web.HTTPNotFound(text="no such GraphiQL file")
    path, cache = served
    return web.FileResponse(
        path,
        headers={
            "Content-Type": f"{CONTENT_TYPES[path.suffix]}; charset=utf-8",
            "Cache-Control": cache,
            "X-Content-Type-Options": "nosniff",
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get(BASE_PATH + "/{name:.+}", serve_file)
