"""Messager API: the messaging service of an accounting firm's practice software.

The package holds the aiohttp application (`app`), its settings, authentication, database and
embedded database server, the command line, and the domain services. The GraphQL types live in the
sibling `schema` package and the resolvers in `resolvers`.
"""
