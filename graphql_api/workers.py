"""Running the API: one process, or N worker processes sharing one port (`--workers N`).

Workers bind the same address with SO_REUSEPORT, so the kernel spreads connections over them and
one machine uses all its cores. They are stateless: they share the database, and live events
reach every worker's subscribers through change streams. The parent only supervises: it forwards
SIGINT/SIGTERM, and if a worker dies it stops the others (the command then exits non-zero).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import signal
import time
from types import FrameType

from aiohttp import web

from graphql_api import metrics
from graphql_api.embedded import die_with_parent
from graphql_api.logging_setup import AccessLogger, configure_logging
from graphql_api.settings import Settings

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_SECONDS = 15.0


def serve_forever(settings: Settings, reuse_port: bool = False) -> None:
    from graphql_api import draining, sanitizer_pool
    from graphql_api.app import init_app  # the server's imports are only for serving
    from graphql_api.keys import REUSE_PORT

    draining.install()

    app = init_app(settings)
    app[REUSE_PORT] = reuse_port
    # Long-lived objects (schema, modules) out of the collector's way. With 1,000 subscribers a
    # process holds about a million tracked objects: Python's defaults run a full collection
    # (~1.5 s, loop stopped) many times a minute; a young generation of 50,000 stopped the loop
    # 0.25 s per young collection and 1.4 s per middle one. 5,000 / 10 keep each young and
    # middle collection near 50 and 100 ms for the same total, and full ones wait for 100
    # middle ones (docs/benchmarks.md, issue 16).
    gc.freeze()
    gc.set_threshold(5_000, 10, 100)
    try:
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            reuse_port=reuse_port,
            print=None,
            shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
            access_log_class=AccessLogger,
        )
    finally:
        sanitizer_pool.shutdown()


def _worker_main(settings: Settings) -> None:
    die_with_parent()  # a killed `serve` must not leave workers holding the port
    configure_logging(settings.log_format, worker=True)
    serve_forever(settings, reuse_port=True)


def run_workers(settings: Settings, count: int) -> None:
    """Start `count` worker processes and wait for them; stop them all on a signal."""
    # The workers' metrics meet in one directory, so that any worker's /metrics shows them all.
    with metrics.multiprocess_dir():
        context = multiprocessing.get_context("spawn")
        workers = [
            context.Process(target=_worker_main, args=(settings,), name=f"messager-worker-{i}")
            for i in range(count)
        ]
        for worker in workers:
            worker.start()
        log.info("started %d workers on %s:%d", count, settings.host, settings.port)

        stopping = False

        def stop(signum: int, _frame: FrameType | None) -> None:
            nonlocal stopping
            stopping = True
            for worker in workers:
                if worker.is_alive() and worker.pid is not None:
                    worker.terminate()  # SIGTERM: aiohttp shuts down gracefully

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while any(worker.is_alive() for worker in workers):
                if not stopping and any(w.exitcode not in (None, 0) for w in workers):
                    log.error("a worker exited unexpectedly; stopping the others")
                    stop(signal.SIGTERM, None)
                time.sleep(0.2)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
            for worker in workers:
                worker.join(max(deadline - time.monotonic(), 0.1))
                if worker.is_alive():
                    worker.kill()
                    worker.join(1.0)
                if worker.pid is not None:
                    metrics.worker_exited(worker.pid)
    failed = [w.name for w in workers if w.exitcode not in (0, -signal.SIGTERM)]
    if failed and not stopping:
        raise SystemExit(f"workers failed: {', '.join(failed)}")
