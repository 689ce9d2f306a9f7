"""`python -m graphql_api` runs the same command line as `messager`."""

from graphql_api.cli import main

raise SystemExit(main())
