"""Thin resolvers: parse arguments, call a domain service, map the result to a schema type."""
