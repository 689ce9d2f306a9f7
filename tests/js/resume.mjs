// A client that loses its connection and resumes where it stopped, as a frontend does: it keeps
// the `cursor` of the last message it received and subscribes again with `after` = that cursor.
//
//   node resume.mjs URL TOKEN CONVERSATION_ID AFTER BEFORE_COUNT AFTER_COUNT
//
// 1. Subscribes to `messageAdded` with `after` = AFTER and receives BEFORE_COUNT messages.
// 2. Drops the connection abruptly (like a network loss), prints {"type": "disconnected",
//    "lastCursor": ...}, and waits for a line "reconnect" on stdin (the test sends messages
//    meanwhile).
// 3. Connects again, subscribes with `after` = the last cursor it saw, and receives AFTER_COUNT
//    messages.
// Every line on stdout is one JSON object: {"type": "connected"}, {"type": "next", "payload"},
// {"type": "disconnected", ...}, {"type": "error", ...}. Exit status: 0 when done, 1 on an error,
// 2 on timeout (MESSAGER_TIMEOUT_MS, 20 s by default), 64 on bad arguments.

import { createInterface } from "node:readline";
import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [url, token, conversationId, firstAfter, beforeArg, afterArg] = process.argv.slice(2);
const beforeCount = Number(beforeArg);
const afterCount = Number(afterArg);
const timeoutMs = Number(process.env.MESSAGER_TIMEOUT_MS ?? 20000);

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

if (!url || !token || !conversationId || !firstAfter || !(beforeCount > 0) || !(afterCount > 0)) {
  process.stderr.write(
    "usage: node resume.mjs URL TOKEN CONVERSATION_ID AFTER BEFORE_COUNT AFTER_COUNT\n",
  );
  process.exit(64);
}

const SUBSCRIPTION = `
  subscription Live($conversationId: ID!, $after: String) {
    messageAdded(conversationId: $conversationId, after: $after) { cursor bodyText }
  }
`;

setTimeout(() => {
  emit({ type: "timeout", afterMs: timeoutMs });
  process.exit(2);
}, timeoutMs).unref();

// Remembers the sockets the client opens, so that step 2 can cut one like a network would.
const sockets = [];
class TrackedWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    sockets.push(this);
  }
}

function connect() {
  return createClient({
    url,
    webSocketImpl: TrackedWebSocket,
    connectionParams: { Authorization: `Bearer ${token}` },
    retryAttempts: 0,
    on: { connected: () => emit({ type: "connected" }) },
  });
}

// Receives `count` messages after `after`; answers the cursor of the last one.
function receive(client, after, count) {
  return new Promise((resolve, reject) => {
    let received = 0;
    let lastCursor = after;
    const stop = client.subscribe(
      { query: SUBSCRIPTION, variables: { conversationId, after } },
      {
        next: (payload) => {
          emit({ type: "next", payload });
          if (payload.errors) return reject(new Error(JSON.stringify(payload.errors)));
          lastCursor = payload.data.messageAdded.cursor;
          received += 1;
          if (received === count) {
            stop();
            resolve(lastCursor);
          }
        },
        error: (error) => reject(error instanceof Error ? error : new Error(JSON.stringify(error))),
        complete: () => {
          if (received < count) reject(new Error(`completed after ${received} messages`));
        },
      },
    );
  });
}

const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

try {
  const first = connect();
  const lastCursor = await receive(first, firstAfter, beforeCount);
  await new Promise((resolve) => {
    first.on("closed", resolve);
    for (const socket of sockets) socket.terminate(); // no close frame: a lost connection
  });
  emit({ type: "disconnected", lastCursor });
  const { value } = await lines.next();
  if (value?.trim() !== "reconnect") throw new Error(`expected "reconnect" on stdin, got ${value}`);

  const second = connect();
  await receive(second, lastCursor, afterCount);
  await second.dispose();
  process.exit(0);
} catch (error) {
  emit({ type: "error", message: String(error?.message ?? error) });
  process.exit(1);
}
