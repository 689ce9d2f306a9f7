"""The GraphiQL page's third-party files: pinned npm packages, committed under `vendor/`.

Each file is byte for byte the one the npm package publishes (its SHA-384 is checked by a test
and sent as the page's subresource integrity), beside the package's license. The page loads
nothing else from anywhere: no CDN, no font service (GraphiQL's fonts are inlined in its CSS).
To move to other versions, edit `VENDORED` and run `python -m graphql_api.graphiql.vendor`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VENDOR_DIR = Path(__file__).parent / "vendor"


@dataclass(frozen=True)
class VendoredFile:
    package: str
    """The npm package name."""
    version: str
    source: str
    """The file's path inside the npm package."""
    integrity: str
    """`sha384-<base64>`, as in a subresource-integrity attribute."""

    @property
    def folder(self) -> str:
        """`<package>@<version>`, with a scope's `@` and `/` made plain (`graphiql-plugin-...`)."""
        return f"{self.package.lstrip('@').replace('/', '-')}@{self.version}"

    @property
    def name(self) -> str:
        return self.source.rsplit("/", 1)[-1]

    @property
    def path(self) -> Path:
        return VENDOR_DIR / self.folder / self.name

    @property
    def url_path(self) -> str:
        return f"vendor/{self.folder}/{self.name}"


VENDORED = (
    VendoredFile(
        "react",
        "18.2.0",
        "umd/react.production.min.js",
        "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8",
    ),
    VendoredFile(
        "react-dom",
        "18.2.0",
        "umd/react-dom.production.min.js",
        "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh",
    ),
    VendoredFile(
        "graphiql",
        "3.8.3",
        "graphiql.min.css",
        "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
    ),
    VendoredFile(
        "graphiql",
        "3.8.3",
        "graphiql.min.js",
        "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
    ),
    VendoredFile(
        "@graphiql/plugin-explorer",
        "1.0.2",
        "dist/style.css",
        "sha384-5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi",
    ),
    VendoredFile(
        "@graphiql/plugin-explorer",
        "1.0.2",
        "dist/index.umd.js",
        "sha384-2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9",
    ),
)

LICENSE_FOLDERS = sorted({f.folder for f in VENDORED})
"""Every vendored package has `vendor/<folder>/LICENSE`, served beside its files."""
