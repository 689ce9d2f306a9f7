"""Memory of a client-file export (SPEC §17): `python -m bench.export_memory [--total-mib 1024]`.

Starts the real server (`python -m graphql_api serve`, with the embedded nx-27017 server) on a
free port with a fresh data directory, imports a one-firm directory whose practitioner is an
admin, uploads `--total-mib` of generated, incompressible attachments (files of at most 100 MiB,
the limit of SPEC §7) through `POST /attachments`, attaches them to one company's conversation
(10 per message), then downloads `GET /companies/{id}/export` streamed (the ZIP is counted and
hashed, never kept) while a thread samples VmRSS of the `serve` process every 50 ms.

Printed: the idle RSS of `serve` before the export, its peak during it and the growth (the
target is under 64 MiB), the ZIP's size and the export's rate.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from bench.attachments import (
    BOUNDARY,
    MIB,
    PROJECT_ROOT,
    RssSampler,
    cli,
    free_port,
    idle_baseline,
    multipart_body,
    wait_until_ready,
)

MAX_FILE_BYTES = 100 * MIB
FILES_PER_MESSAGE = 10
TARGET_GROWTH = 64 * MIB

DIRECTORY = {
    "firms": [{"key": "bench", "name": "Bench Accounting"}],
    "companies": [{"key": "acme", "firm": "bench", "name": "Acme Ltd"}],
    "users": [
        {
            "key": "ada",
            "firm": "bench",
            "kind": "PRACTITIONER",
            "name": "Ada Bench",
            "email": "ada@bench.test",
            "favorites": ["acme"],
            "admin": True,
        },
        {
            "key": "cleo",
            "firm": "bench",
            "kind": "CLIENT",
            "name": "Cleo Client",
            "email": "cleo@acme.test",
            "companies": ["acme"],
        },
    ],
}

CREATE = """mutation($i: CreateConversationInput!) { createConversation(input: $i) { id } }"""
SEND = """mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }"""


async def graphql(session: aiohttp.ClientSession, url: str, query: str, variables: dict) -> dict:
    async with session.post(f"{url}/graphql", json={"query": query, "variables": variables}) as r:
        body = await r.json()
    if body.get("errors"):
        raise SystemExit(f"GraphQL error: {body['errors']}")
    return body["data"]


async def fill(url: str, token: str, ids: dict, total: int) -> int:
    """Upload `total` bytes of files and attach them to one conversation; answer the count."""
    headers = {"Authorization": f"Bearer {token}"}
    sizes = []
    left = total
    while left > 0:
        sizes.append(min(MAX_FILE_BYTES, left))
        left -= sizes[-1]
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        uploaded = []
        for index, size in enumerate(sizes):
            async with session.post(
                f"{url}/attachments",
                data=multipart_body(size, f"statement-{index:02d}.bin"),
                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            ) as response:
                if response.status != 201:
                    raise SystemExit(f"upload failed: {response.status} {await response.text()}")
                uploaded.append((await response.json())["id"])
            print(f"  uploaded {index + 1}/{len(sizes)} ({size / MIB:.0f} MiB)", flush=True)
        batches = [
            uploaded[i : i + FILES_PER_MESSAGE] for i in range(0, len(uploaded), FILES_PER_MESSAGE)
        ]
        created = await graphql(
            session,
            url,
            CREATE,
            {
                "i": {
                    "type": "COMPANY",
                    "companyId": ids["companies"]["acme"],
                    "participantIds": [ids["users"]["cleo"]],
                    "subject": "Year-end statements",
                    "body": "<p>All the statements</p>",
                    "attachmentIds": batches[0],
                }
            },
        )
        conversation = created["createConversation"]["id"]
        for batch in batches[1:]:
            await graphql(
                session,
                url,
                SEND,
                {"i": {"conversationId": conversation, "body": "", "attachmentIds": batch}},
            )
    return len(sizes)


async def export(url: str, token: str, company_id: str) -> tuple[int, str, float]:
    """Download the export streamed; answer its size, SHA-256 and seconds."""
    digest = hashlib.sha256()
    size = 0
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=None)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.get(
            f"{url}/companies/{company_id}/export",
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            if response.status != 200:
                raise SystemExit(f"export failed: {response.status} {await response.text()}")
            async for chunk in response.content.iter_chunked(1 << 20):
                digest.update(chunk)
                size += len(chunk)
    return size, digest.hexdigest(), time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.export_memory", description=__doc__)
    parser.add_argument("--total-mib", type=float, default=1024.0, help="attachments in MiB")
    args = parser.parse_args()
    total = int(args.total_mib * MIB)

    with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
        data_dir = Path(tmp) / "data"
        env = {k: v for k, v in os.environ.items() if k != "MONGODB_URI"}
        env |= {
            "MESSAGER_DATA_DIR": str(data_dir),
            "MESSAGER_JWT_SECRET": secrets.token_hex(32),
            "MESSAGER_RATE_LIMITS": "false",
            "PYTHONUNBUFFERED": "1",
        }
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "serve.log"
        with open(log, "wb") as log_file:
            server = subprocess.Popen(
                [sys.executable, "-m", "graphql_api", "serve", "--port", str(port)],
                env=env,
                cwd=PROJECT_ROOT,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_ready(url, server, log)
            directory = Path(tmp) / "directory.json"
            directory.write_text(json.dumps(DIRECTORY))
            ids = json.loads(cli(env, "import", str(directory)))
            token = cli(env, "token", "ada@bench.test").strip()
            print(f"filling acme with {total / MIB:.0f} MiB of attachments...", flush=True)
            files = asyncio.run(fill(url, token, ids, total))
            time.sleep(2.0)  # let the upload's buffers settle before the baseline
            baseline = idle_baseline({"serve": server.pid}, seconds=2.0)["serve"]
            sampler = RssSampler({"serve": server.pid})
            sampler.start()
            try:
                size, sha256, seconds = asyncio.run(export(url, token, ids["companies"]["acme"]))
            finally:
                sampler.stop()
            peak = sampler.peaks()["serve"]
            growth = peak - baseline
            verdict = "under" if growth < TARGET_GROWTH else "OVER"
            print(
                f"export of {files} files, {total / MIB:.0f} MiB of attachments: ZIP "
                f"{size / MIB:.1f} MiB in {seconds:.1f} s ({size / seconds / 1e6:.1f} MB/s), "
                f"sha256 {sha256[:16]}...\n"
                f"serve RSS: idle {baseline / MIB:.1f} MiB, peak during the export "
                f"{peak / MIB:.1f} MiB, growth {growth / MIB:.1f} MiB "
                f"({verdict} the {TARGET_GROWTH / MIB:.0f} MiB target); "
                f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


if __name__ == "__main__":
    main()
