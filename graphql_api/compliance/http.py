"""`GET /companies/{company_id}/export`: an admin downloads a client file as a ZIP (SPEC §17).

Authenticated like GraphQL (the bearer header). A viewer who is not an admin of its firm gets
403 FORBIDDEN whatever the id; an admin gets 404 NOT_FOUND for an unknown, malformed or another
firm's company, exactly alike. The answer is streamed as it is made (`export.company_zip`), after
the export's audit record is written.
"""

from __future__ import annotations

from aiohttp import web

from graphql_api import clock
from graphql_api.attachments.files import content_disposition
from graphql_api.compliance import audit
from graphql_api.compliance.export import company_zip
from graphql_api.context import authenticate
from graphql_api.errors import ApiError, error_response
from graphql_api.keys import SERVICES
from graphql_api.policy import fetch_administered_company


async def export_company(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    try:
        viewer = await authenticate(services, request.headers.get("Authorization"))
        company = await fetch_administered_company(
            services.db, viewer, request.match_info["company_id"]
        )
    except ApiError as error:
        return error_response(error)
    chunks = await company_zip(services.db, services.attachments, company, audit.Actor.of(viewer))
    day = clock.now().strftime("%Y-%m-%d")
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": content_disposition(f"{company.key or company.id}-{day}.zip"),
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response
