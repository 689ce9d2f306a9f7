"""Search across conversations (SPEC §16): folded words, the index fields, snippets, the query."""
