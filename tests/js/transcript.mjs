// Opens an exported transcript.html (SPEC §17) in headless Chromium (Debian's `chromium`, through
// playwright-core) from the extracted ZIP, with every request blocked (the page must stand
// alone), and reports what a reader sees.
//
//   node transcript.mjs FILE SCREENSHOT
//
// Prints one JSON line {"type": "page", "title", "text", "entries": [{"classes", "text"}],
// "requests": [...], "consoleErrors": [...]} and exits 0; 1 on failure ({"type": "error"}).
// CHROMIUM (default /usr/bin/chromium) names the browser.

import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const [file, screenshot] = process.argv.slice(2);
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const timeout = Number(process.env.MESSAGER_TIMEOUT_MS ?? 20000);

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

if (!file || !screenshot) {
  process.stderr.write("usage: node transcript.mjs FILE SCREENSHOT\n");
  process.exit(64);
}

const browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
let status = 0;
try {
  const page = await browser.newPage({ viewport: { width: 900, height: 1100 } });
  const requests = [];
  const consoleErrors = [];
  const url = pathToFileURL(file).href;
  await page.route("**/*", (route) => {
    const requested = route.request().url();
    if (requested === url) return route.continue();
    requests.push(requested);
    return route.abort();
  });
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  await page.goto(url, { timeout });
  const entries = await page.$$eval("li.entry", (items) =>
    items.map((item) => ({ classes: item.className, text: item.innerText })),
  );
  emit({
    type: "page",
    title: await page.title(),
    text: await page.innerText("body"),
    entries,
    requests,
    consoleErrors,
  });
  await page.screenshot({ path: screenshot, fullPage: true });
} catch (error) {
  emit({ type: "error", message: String(error) });
  status = 1;
} finally {
  await browser.close();
}
process.exit(status);
