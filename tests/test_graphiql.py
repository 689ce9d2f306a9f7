"""GraphiQL works with no internet access (SPEC §19): its page and every file it loads come from
the API's own origin, at pinned versions, with their licenses. (The real-browser run of the page
is `tests/test_graphiql_browser.py`.)"""

from __future__ import annotations

import base64
import hashlib
import re

from graphql_api.graphiql.assets import VENDORED

REFERENCE = re.compile(r'(?:src|href)="([^"]*)"')


async def page(http) -> str:
    response = await http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status == 200
    assert response.content_type == "text/html"
    return await response.text()


async def test_the_graphiql_page_references_only_files_of_its_own_origin(http):
    html = await page(http)
    references = REFERENCE.findall(html)
    assert references, html
    assert all(ref.startswith("/graphiql/") for ref in references), references
    assert "//" not in "".join(references)
    assert "<script>" not in html and "<style>" not in html  # nothing inline: CSP-friendly


async def test_every_file_the_page_references_is_served(http):
    for reference in REFERENCE.findall(await page(http)):
        response = await http.get(reference)
        assert response.status == 200, reference
        expected = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}
        assert response.content_type == expected[reference.rsplit(".", 1)[1]], reference
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_vendored_files_are_the_pinned_npm_files_with_their_integrity_in_the_page(http):
    html = await page(http)
    for file in VENDORED:
        response = await http.get(f"/graphiql/{file.url_path}")
        body = await response.read()
        digest = "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()
        assert digest == file.integrity, file
        assert f'href="/graphiql/{file.url_path}" integrity="{file.integrity}"' in html or (
            f'src="/graphiql/{file.url_path}" integrity="{file.integrity}"' in html
        )
        assert "immutable" in response.headers["Cache-Control"]


async def test_each_vendored_package_serves_its_license(http):
    for folder in {file.folder for file in VENDORED}:
        response = await http.get(f"/graphiql/vendor/{folder}/LICENSE")
        assert response.status == 200, folder
        assert "MIT License" in await response.text(), folder


async def test_only_the_listed_files_are_served(http):
    for path in [
        "/graphiql/../app.py",
        "/graphiql/%2e%2e/assets.py",
        "/graphiql/assets.py",
        "/graphiql/vendor/graphiql@3.8.3/graphiql.min.js.map",
        "/graphiql/static/start.js",
    ]:
        response = await http.get(path)
        assert response.status == 404, path
        assert (await response.json())["error"]["code"] == "NOT_FOUND"
