// Subscribes to `messageAdded` with the client library frontends use: graphql-ws on `ws`.
//
//   node subscribe.mjs URL TOKEN CONVERSATION_ID COUNT [AFTER]
//
// (or MESSAGER_WS_URL, MESSAGER_TOKEN, MESSAGER_CONVERSATION_ID, MESSAGER_COUNT, MESSAGER_AFTER;
// MESSAGER_TIMEOUT_MS bounds the whole run, 20 s by default). Every line on stdout is one JSON
// object: {"type": "connected"}, {"type": "next", "payload": <the payload as received>},
// {"type": "closed", "code": 4401, "reason": "..."}, {"type": "error", ...}, {"type": "timeout"}.
// Exit status: 0 after COUNT payloads; 1 on an error (a close included: retries are off, so a
// refused connection is reported instead of retried); 2 on timeout; 3 if the server completed the
// subscription first; 64 on bad arguments.

import { createClient } from "graphql-ws";
import WebSocket from "ws";

const [argUrl, argToken, argConversation, argCount, argAfter] = process.argv.slice(2);
const env = process.env;
const url = argUrl ?? env.MESSAGER_WS_URL;
const token = argToken ?? env.MESSAGER_TOKEN;
const conversationId = argConversation ?? env.MESSAGER_CONVERSATION_ID;
const count = Number(argCount ?? env.MESSAGER_COUNT);
const after = argAfter || env.MESSAGER_AFTER || null;
const timeoutMs = Number(env.MESSAGER_TIMEOUT_MS ?? 20000);

function emit(line) {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

if (!url || !token || !conversationId || !Number.isInteger(count) || count < 1) {
  process.stderr.write("usage: node subscribe.mjs URL TOKEN CONVERSATION_ID COUNT [AFTER]\n");
  process.exit(64);
}

const SUBSCRIPTION = `
  subscription MessageAdded($conversationId: ID!, $after: String) {
    messageAdded(conversationId: $conversationId, after: $after) {
      id
      body
      bodyText
      author { id name }
      conversation { id }
      createdAt
    }
  }
`;

let finished = false;
let client;

function finish(code) {
  if (finished) return;
  finished = true;
  clearTimeout(timer);
  Promise.resolve(client?.dispose())
    .catch(() => {})
    .finally(() => process.exit(code));
}

function describe(error) {
  if (error && typeof error === "object" && "code" in error && "reason" in error) {
    return { closeCode: error.code, reason: String(error.reason) };
  }
  if (Array.isArray(error)) return { graphqlErrors: error };
  if (error instanceof Error) return { message: error.message };
  return { message: String(error) };
}

const timer = setTimeout(() => {
  emit({ type: "timeout", afterMs: timeoutMs });
  process.stderr.write(`no ${count} payloads within ${timeoutMs} ms\n`);
  finish(2);
}, timeoutMs);

client = createClient({
  url,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  retryAttempts: 0,
  on: {
    connected: () => emit({ type: "connected" }),
    closed: (event) => {
      if (!finished) emit({ type: "closed", code: event.code, reason: String(event.reason) });
    },
  },
});

let received = 0;
client.subscribe(
  { query: SUBSCRIPTION, variables: { conversationId, after } },
  {
    next: (payload) => {
      emit({ type: "next", payload });
      if (payload.errors) {
        process.stderr.write(`errors in a payload: ${JSON.stringify(payload.errors)}\n`);
        finish(1);
        return;
      }
      received += 1;
      if (received >= count) finish(0);
    },
    error: (error) => {
      const details = describe(error);
      emit({ type: "error", ...details });
      process.stderr.write(`subscription failed: ${JSON.stringify(details)}\n`);
      finish(1);
    },
    complete: () => {
      if (finished) return;
      emit({ type: "complete", received });
      process.stderr.write(`the server completed the subscription after ${received} payloads\n`);
      finish(3);
    },
  },
);
