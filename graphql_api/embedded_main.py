"""Entry point of the embedded nx-27017 process, with its per-command logging turned down.

nx-27017 logs every wire command at INFO; the service runs it with warnings only so that its log
file under the data directory stays small. Run as `python -m graphql_api.embedded_main ARGS`.
"""

import logging
import sys

from nx_27017.nx_27017 import main

if __name__ == "__main__":
    # nx-27017 calls basicConfig(level=INFO); configuring first makes that call a no-op.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    sys.argv[0] = "nx-27017"
    main()
