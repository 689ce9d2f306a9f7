"""GraphiQL in a real browser with no internet access (SPEC §19).

Headless Chromium (Debian's `chromium`, driven by `tests/js/graphiql.mjs` through playwright-core)
opens the API's GraphiQL page with every request to a non-loopback address blocked, sets a token
in the Headers editor, runs a query, then a subscription, and shows a message this test sends
meanwhile. Its screenshot is `docs/graphiql.png`: run with MESSAGER_UPDATE_SCREENSHOT=1 to
refresh it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from graphql_api.keys import SERVICES
from tests.conftest import Api
from tests.node_clients import NodeScript, node_script

DOCS_SCREENSHOT = Path(__file__).parent.parent / "docs" / "graphiql.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BROWSER_WAIT = 30.0  # loading GraphiQL's 4 MB in a cold headless browser on a busy machine

CREATE = """
mutation Create($input: CreateConversationInput!) { createConversation(input: $input) { id } }
"""
SEND = "mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { id cursor } }"


async def wait_for_subscribers(api: Api, count: int, browser: NodeScript) -> None:
    """Until the app's event hub holds `count` subscriptions (then a message is delivered)."""
    hub = api.http.app[SERVICES].hub
    try:
        async with asyncio.timeout(BROWSER_WAIT):
            while hub.subscriber_count < count:
                if browser.process.returncode is not None:
                    break  # the page failed: its report says why
                await asyncio.sleep(0.01)
    except TimeoutError:
        pass
    if hub.subscriber_count < count:
        await browser.exit_code(within=BROWSER_WAIT + 5)  # the script reports what it showed
        pytest.fail(f"the page's subscription never started\n{browser.report()}")


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("Debian's `chromium` is not installed: apt-get install -y chromium")
    return path


async def test_graphiql_runs_a_query_and_shows_a_live_message_with_no_internet(
    api: Api, node: str, chromium: str, tmp_path: Path
):
    created = await api.gql(
        CREATE,
        {
            "input": {
                "type": "PRIVATE",
                "participantIds": [api.ids["users"]["bob"]],
                "subject": "Year-end closing",
                "body": "<p>Opening</p>",
            }
        },
        as_="alice",
    )
    conversation_id = created["createConversation"]["id"]
    text = "The balance sheet is ready"
    screenshot = tmp_path / "graphiql.png"
    url = str(api.http.make_url("/graphql"))
    args = (url, api.token("bob"), conversation_id, text, str(screenshot))
    browser_env = {"CHROMIUM": chromium, "MESSAGER_TIMEOUT_MS": str(int(BROWSER_WAIT * 1000))}

    async with node_script(node, "graphiql.mjs", *args, env=browser_env) as browser:
        await browser.expect("loaded", within=BROWSER_WAIT)
        query = await browser.expect("query")
        await browser.expect("subscribing")
        await wait_for_subscribers(api, 1, browser)  # the page's subscription is live
        sent = await api.gql(
            SEND,
            {"input": {"conversationId": conversation_id, "body": f"<p>{text}</p>"}},
            as_="alice",
        )
        live = await browser.expect("live")
        requests = await browser.expect("requests")
        assert await browser.exit_code() == 0, browser.report()

    assert query["result"] == {"data": {"viewer": {"name": "Bob Martin", "kind": "CLIENT"}}}
    assert json.loads(live["result"]) == {
        "data": {
            "messageAdded": {
                "cursor": sent["sendMessage"]["cursor"],
                "author": {"name": "Alice Roy"},
                "bodyText": text,
            }
        }
    }
    assert requests["blocked"] == [], requests
    addresses = [urlsplit(address) for address in requests["urls"]]
    assert {a.hostname for a in addresses} == {"127.0.0.1"}, requests
    assert {a.scheme for a in addresses} == {"http", "ws"}  # the page's files, then the socket
    assert any(a.path.startswith("/graphiql/vendor/graphiql@") for a in addresses)
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
    if os.environ.get("MESSAGER_UPDATE_SCREENSHOT"):
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)
