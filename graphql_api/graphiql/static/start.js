// Starts GraphiQL on the Messager API's own /graphql: queries and mutations over HTTP,
// subscriptions over WebSocket (graphql-transport-ws). The headers typed in the "Headers" tab go
// with every HTTP request and, for a subscription, in the connection_init payload, which is how
// the API authenticates a WebSocket. Everything this page loads comes from this server.
/* global React, ReactDOM, GraphiQL, GraphiQLPluginExplorer */
"use strict";

const DEFAULT_QUERY = `# Messager API
#
# 1. Put a token in "Headers" below:
#    \`messager serve --demo\` prints one per demo
#    user, \`messager token EMAIL\` one for any user.
# 2. Run with the play button or Ctrl-Enter.
# 3. The book icon lists every type and field; the
#    explorer builds operations by clicking.
#
# Subscriptions run here too (over WebSocket):
#   subscription Live($conversationId: ID!) {
#     messageAdded(conversationId: $conversationId) {
#       cursor author { name } bodyText
#     }
#   }

query Viewer {
  viewer {
    name
    kind
    favoriteCompanies { name }
  }
}
`;

const DEFAULT_HEADERS = `{
  "Authorization": "Bearer <token>"
}`;

const endpoint = window.location.origin + window.location.pathname;

function webSocketUrl(httpUrl) {
  const url = new URL(httpUrl);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.hash = "";
  url.search = "";
  return url.toString();
}

// The query and variables (never the headers: they hold a token) are kept in the address, so a
// link shares an operation.
const parameters = new URLSearchParams(window.location.search);

function remember(name, value) {
  if (value) {
    parameters.set(name, value);
  } else {
    parameters.delete(name);
  }
  const search = parameters.toString();
  window.history.replaceState(null, "", search ? `?${search}` : window.location.pathname);
}

const fetcher = GraphiQL.createFetcher({
  url: endpoint,
  subscriptionUrl: webSocketUrl(endpoint),
});

function MessagerGraphiQL() {
  const explorer = React.useMemo(() => GraphiQLPluginExplorer.explorerPlugin(), []);
  return React.createElement(GraphiQL, {
    fetcher,
    plugins: [explorer],
    defaultQuery: DEFAULT_QUERY,
    defaultHeaders: DEFAULT_HEADERS,
    query: parameters.get("query") || undefined,
    variables: parameters.get("variables") || undefined,
    onEditQuery: (query) => remember("query", query),
    onEditVariables: (variables) => remember("variables", variables),
    defaultEditorToolsVisibility: true,
    isHeadersEditorEnabled: true,
    shouldPersistHeaders: true,
    inputValueDeprecation: true,
  });
}

ReactDOM.createRoot(document.getElementById("graphiql")).render(
  React.createElement(MessagerGraphiQL),
);
