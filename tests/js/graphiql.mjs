// Drives the API's GraphiQL page in headless Chromium (Debian's `chromium`, through
// playwright-core, which never downloads a browser of its own), with every request that is not
// for a loopback address blocked, as on a machine without internet access.
//
//   node graphiql.mjs URL TOKEN CONVERSATION_ID EXPECTED_TEXT SCREENSHOT
//
// URL is the GraphiQL address (http://127.0.0.1:PORT/graphql). The page is opened, the token is
// set in the Headers editor, `query Viewer` is run, then `subscription Live` on the conversation;
// the script then waits for EXPECTED_TEXT (a message the test sends meanwhile) to appear in the
// result pane, and saves a screenshot. Every line on stdout is one JSON object:
//   {"type": "loaded"}, {"type": "query", "result": ...}, {"type": "subscribing"},
//   {"type": "live", "result": "..."}, {"type": "requests", "urls": [...], "blocked": [...]},
//   {"type": "error", "message": "..."}.
// Exit status: 0 when the live event was shown; 1 otherwise; 64 on bad arguments.
// CHROMIUM (default /usr/bin/chromium) names the browser; MESSAGER_TIMEOUT_MS bounds each wait.

import { chromium } from "playwright-core";

const [url, token, conversationId, expectedText, screenshot] = process.argv.slice(2);
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const timeout = Number(process.env.MESSAGER_TIMEOUT_MS ?? 20000);

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

if (!url || !token || !conversationId || !expectedText || !screenshot) {
  process.stderr.write(
    "usage: node graphiql.mjs URL TOKEN CONVERSATION_ID EXPECTED_TEXT SCREENSHOT\n",
  );
  process.exit(64);
}

const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);
const isLoopback = (address) => {
  try {
    return LOOPBACK.has(new URL(address).hostname);
  } catch {
    return false;
  }
};

const requested = [];
const blocked = [];

const QUERY = "query Viewer {\n  viewer {\n    name\n    kind\n  }\n}\n";
const SUBSCRIPTION = `subscription Live($conversationId: ID!) {
  messageAdded(conversationId: $conversationId) {
    cursor
    author { name }
    bodyText
  }
}
`;

// GraphiQL's editors are CodeMirror 5 instances; setting their value is what typing does, without
// the editor's bracket auto-closing getting in the way.
async function setEditor(page, selector, value) {
  await page.waitForSelector(`${selector} .CodeMirror`, { timeout });
  await page.$eval(`${selector} .CodeMirror`, (element, text) => element.CodeMirror.setValue(text), value);
}

// GraphiQL takes in an edit after a short debounce (then it knows the operation is a
// subscription, not a query); the page's start script records the edit in the address at that
// moment, so the address says when the edit has been taken in.
async function waitUntilTakenIn(page, parameter, value) {
  await page.waitForFunction(
    ([name, expected]) => new URLSearchParams(window.location.search).get(name) === expected,
    [parameter, value],
    { timeout },
  );
}

async function resultText(page) {
  return page.$eval(".graphiql-response .CodeMirror", (element) => element.CodeMirror.getValue());
}

async function waitForResult(page, predicate) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const text = await resultText(page).catch(() => "");
    if (predicate(text)) return text;
    if (Date.now() > deadline) throw new Error(`result pane never matched; it shows: ${text}`);
    await page.waitForTimeout(50);
  }
}

async function openEditorTool(page, name) {
  await page.getByRole("button", { name, exact: true }).click();
  return ".graphiql-editor-tool .graphiql-editor:not(.hidden)";
}

const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
let status = 1;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.route("**/*", (route) => {
    const address = route.request().url();
    requested.push(address);
    if (isLoopback(address)) return route.continue();
    blocked.push(address);
    return route.abort("blockedbyclient");
  });
  await context.routeWebSocket(/.*/, (socket) => {
    requested.push(socket.url());
    if (isLoopback(socket.url())) {
      socket.connectToServer();
    } else {
      blocked.push(socket.url());
      socket.close();
    }
  });
  const page = await context.newPage();
  page.on("pageerror", (error) => emit({ type: "pageerror", message: String(error) }));

  await page.goto(url);
  await page.waitForSelector(".graphiql-query-editor .CodeMirror", { timeout });
  emit({ type: "loaded" });

  const headers = await openEditorTool(page, "Headers");
  await setEditor(page, headers, JSON.stringify({ Authorization: `Bearer ${token}` }, null, 2));
  await setEditor(page, ".graphiql-query-editor", QUERY);
  await waitUntilTakenIn(page, "query", QUERY);
  await page.getByRole("button", { name: "Execute query (Ctrl-Enter)" }).click();
  const queryResult = await waitForResult(page, (text) => text.includes('"viewer"'));
  emit({ type: "query", result: JSON.parse(queryResult) });

  const variables = await openEditorTool(page, "Variables");
  const variablesText = JSON.stringify({ conversationId }, null, 2);
  await setEditor(page, variables, variablesText);
  await waitUntilTakenIn(page, "variables", variablesText);
  await setEditor(page, ".graphiql-query-editor", SUBSCRIPTION);
  await waitUntilTakenIn(page, "query", SUBSCRIPTION);
  await page.getByRole("button", { name: "Execute query (Ctrl-Enter)" }).click();
  emit({ type: "subscribing" });
  const live = await waitForResult(page, (text) => text.includes(expectedText));
  await page.screenshot({ path: screenshot });
  emit({ type: "live", result: live });
  status = 0;
} catch (error) {
  const shown = await browser.contexts()[0]?.pages()[0]?.evaluate(() =>
    document.querySelector(".graphiql-response .CodeMirror")?.CodeMirror.getValue(),
  ).catch(() => undefined);
  emit({ type: "error", message: String(error?.stack ?? error), resultPane: shown });
} finally {
  emit({ type: "requests", urls: requested, blocked });
  await browser.close();
}
process.exit(status);
