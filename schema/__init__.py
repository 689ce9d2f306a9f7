"""The GraphQL schema: Strawberry types, inputs, enums, directives and the schema object.

`schema.schema.schema` is the executable schema; `schema.graphql` at the project root is its SDL,
exported by `messager export-schema` and compared with the code by a test.
"""
