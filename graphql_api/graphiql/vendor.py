"""Refresh `vendor/` from the npm registry: `python -m graphql_api.graphiql.vendor`.

Only for maintainers moving to other versions (the files are committed; serving needs no npm).
Uses `npm pack` (the registry's own client), copies each file of `assets.VENDORED` and the
package's LICENSE, and checks every file against its pinned SHA-384 (update the pins first).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from graphql_api.graphiql.assets import VENDORED, VendoredFile


def integrity(path: Path) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()


def _unpack(package: str, version: str, into: Path) -> Path:
    done = subprocess.run(
        ["npm", "pack", "--silent", f"{package}@{version}"],
        cwd=into,
        capture_output=True,
        text=True,
        check=True,
    )
    tarball = into / done.stdout.strip().splitlines()[-1]
    target = into / tarball.stem
    with tarfile.open(tarball) as archive:
        archive.extractall(target, filter="data")
    return target / "package"


def main() -> int:
    failures = []
    with tempfile.TemporaryDirectory() as work:
        unpacked: dict[tuple[str, str], Path] = {}
        for file in VENDORED:
            key = (file.package, file.version)
            if key not in unpacked:
                unpacked[key] = _unpack(file.package, file.version, Path(work))
            package_dir = unpacked[key]
            file.path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(package_dir / file.source, file.path)
            license_file = package_dir / "LICENSE"
            if license_file.exists():
                shutil.copyfile(license_file, file.path.parent / "LICENSE")
            elif not (file.path.parent / "LICENSE").exists():
                failures.append(f"{file.folder}: the package has no LICENSE; write one")
            if integrity(file.path) != file.integrity:
                failures.append(
                    f"{_describe(file)}: {integrity(file.path)} (pinned {file.integrity})"
                )
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


def _describe(file: VendoredFile) -> str:
    return f"{file.package}@{file.version}/{file.source}"


if __name__ == "__main__":
    raise SystemExit(main())
