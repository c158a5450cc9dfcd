"""Run the official 1EdTech/IMS Open Badges 2.0 validator core (PyPI `openbadges` 1.1.2) offline.

Usage (with the verifier venv's python, see tests/verifiers/ob2_validator.py):

    validate.py INPUT [--recipient EMAIL] [--contexts DIR] [--manifest FILE]
    validate.py INPUT --unbake        # only what openbadges_bakery.unbake reads from a baked image
    validate.py --check               # smoke test of the venv

INPUT is an http(s) URL of a hosted assertion, a baked .png/.svg, an assertion .json file, or a raw
JSON/JWS string. Prints ONE JSON object: {"valid", "errors", "warnings", "report", "http"}; exits 0
whatever the verdict, non-zero only when this harness itself fails.

Why the patches below: the 2017-era package needs `collections.Mapping` & co. on Python 3.11, and it
fetches everything (including the JSON-LD context https://w3id.org/openbadges/v2) with requests,
without timeouts. There is no internet here: loopback requests go through (with a timeout), known
JSON-LD contexts are answered from local files, anything else is refused at once: nothing hangs.
"""

from __future__ import annotations

import argparse
import collections
import collections.abc
import io
import json
import os
import socket
import sys
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
DEFAULT_CONTEXTS = REPO / "ebackpack" / "domain" / "credentials" / "contexts"
SHARED_MANIFEST = REPO.parent / "shared" / "contexts" / "manifest.json"
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}
HTTP_TIMEOUT = 20.0
ABC_NAMES = (
    "Mapping",
    "MutableMapping",
    "Sequence",
    "MutableSequence",
    "Iterable",
    "Iterator",
    "Callable",
    "Set",
    "MutableSet",
    "Hashable",
    "Container",
    "Sized",
)


def install_collections_aliases() -> None:
    """python-jose 3.0.1 and requests-cache 0.4.13 import ABCs from `collections` (gone in 3.10)."""
    for name in ABC_NAMES:
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    host = host.strip("[]").lower()
    return host in LOOPBACK_NAMES or host.startswith("127.") or host == "::1"


def load_manifest(contexts: Path, manifest: Path | None) -> dict[str, Path]:
    """URL -> local file, from a manifest like shared/contexts/manifest.json ({url: {"file": name}})."""
    candidates = [manifest] if manifest else [contexts / "manifest.json", SHARED_MANIFEST]
    for path in candidates:
        if path is not None and path.is_file():
            raw = json.loads(path.read_text(encoding="utf-8"))
            return {
                url: contexts / (entry["file"] if isinstance(entry, dict) else entry)
                for url, entry in raw.items()
            }
    return {}


class Offline:
    """Where the validator's HTTP goes: local context files, loopback, or an immediate refusal."""

    def __init__(self, contexts: Path, table: dict[str, Path]) -> None:
        self.contexts = contexts
        self.table = table
        self.served: list[str] = []
        self.refused: list[str] = []
        self.fetches: list[dict[str, Any]] = []

    def context_file(self, url: str) -> Path | None:
        """By manifest, else by the file naming convention host_path_parts[.jsonld|.json]."""
        bare = url.split("#", 1)[0]
        for key in (bare, bare.rstrip("/"), bare.replace("http://", "https://", 1)):
            if key in self.table and self.table[key].is_file():
                return self.table[key]
        stem = bare.split("://", 1)[-1].rstrip("/").replace("/", "_")
        for suffix in ("", ".jsonld", ".json"):
            path = self.contexts / (stem + suffix)
            if stem and path.is_file():
                return path
        return None

    def summary(self) -> dict[str, Any]:
        return {
            "fetches": self.fetches,
            "served_locally": sorted(set(self.served)),
            "refused": sorted(set(self.refused)),
        }


def guard_sockets() -> None:
    """Refuse any DNS lookup or connection outside loopback immediately (second line of defence)."""
    real_getaddrinfo = socket.getaddrinfo
    real_create_connection = socket.create_connection

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name is not None and not is_loopback(str(name)):
            raise socket.gaierror(socket.EAI_NONAME, f"offline validator: refused lookup of {name}")
        return real_getaddrinfo(host, *args, **kwargs)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
        if not is_loopback(str(address[0])):
            raise ConnectionRefusedError(f"offline validator: refused connection to {address[0]}")
        return real_create_connection(address, *args, **kwargs)

    socket.getaddrinfo = getaddrinfo
    socket.create_connection = create_connection


def patch_requests(offline: Offline) -> None:
    """All validator HTTP goes through requests' HTTPAdapter.send (plain and requests_cache sessions)."""
    import requests
    import urllib3
    from requests.adapters import HTTPAdapter

    real_send = HTTPAdapter.send

    def send(self: HTTPAdapter, request: Any, *args: Any, **kwargs: Any) -> Any:
        url = str(request.url)
        if is_loopback(urlsplit(url).hostname):
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = HTTP_TIMEOUT
            response = real_send(self, request, *args, **kwargs)
            offline.fetches.append(
                {
                    "url": url,
                    "status": response.status_code,
                    "content_type": response.headers.get("Content-Type"),
                }
            )
            return response
        local = offline.context_file(url)
        if local is None:
            offline.refused.append(url)
            raise requests.ConnectionError(f"offline validator: no local copy of {url}", request=request)
        offline.served.append(url)
        raw = urllib3.HTTPResponse(
            body=io.BytesIO(local.read_bytes()),
            status=200,
            reason="OK",
            preload_content=False,
            headers={"Content-Type": "application/ld+json"},
            decode_content=False,
        )
        return self.build_response(request, raw)

    HTTPAdapter.send = send  # type: ignore[method-assign]


def patch_pyld(offline: Offline) -> None:
    """pyld's default loader (urllib) runs where openbadges passes no documentLoader: use requests."""
    import requests
    from pyld import jsonld

    def loader(url: str) -> dict[str, Any]:
        response = requests.get(url, headers={"Accept": "application/ld+json, application/json"})
        return {"contextUrl": None, "documentUrl": url, "document": response.text}

    jsonld.set_document_loader(loader)


def recipient_profile(value: str | None) -> dict[str, Any] | None:
    """A trusted recipient Profile: email by default, url for http(s), telephone for +digits, or JSON."""
    if not value:
        return None
    if value.startswith("{"):
        return dict(json.loads(value))
    if value.startswith(("http://", "https://")):
        return {"url": value}
    if value.startswith("+"):
        return {"telephone": value}
    return {"email": value}


def run_verify(target: str, profile: dict[str, Any] | None) -> dict[str, Any]:
    """openbadges.verify on a URL, a baked image (as a file object), a JSON file or a raw string."""
    import openbadges

    path = Path(target)
    if "://" in target or not path.is_file():
        return dict(openbadges.verify(target, recipient_profile=profile))
    if path.suffix.lower() in (".png", ".svg"):
        with path.open("rb") as handle:
            return dict(openbadges.verify(handle, recipient_profile=profile))
    return dict(openbadges.verify(path.read_text(encoding="utf-8"), recipient_profile=profile))


def crashed(exc: Exception) -> dict[str, Any]:
    """The validator raised on this input (e.g. unbake found nothing): a verdict, not a harness failure."""
    message = {
        "messageLevel": "ERROR",
        "name": "VALIDATOR_CRASHED",
        "success": False,
        "result": f"{type(exc).__name__}: {exc}",
    }
    return {"report": {"valid": False, "messages": [message], "traceback": traceback.format_exc()}}


def messages(report: dict[str, Any], level: str) -> list[str]:
    return [str(m.get("result", "")) for m in report.get("messages", []) if m.get("messageLevel") == level]


def json_safe(value: Any) -> Any:
    return json.loads(
        json.dumps(value, default=lambda o: o.decode("utf-8", "replace") if isinstance(o, bytes) else repr(o))
    )


def summarize(result: dict[str, Any], offline: Offline) -> dict[str, Any]:
    report = result.get("report", {})
    return {
        "valid": bool(report.get("valid")),
        "errors": messages(report, "ERROR"),
        "warnings": messages(report, "WARNING"),
        "report": json_safe(result),
        "http": offline.summary(),
    }


def unbake_only(path: Path) -> dict[str, Any]:
    """The reference bakery's reading of a baked image (its SVG reader returns bytes for a bare URL)."""
    from openbadges_bakery import unbake

    with path.open("rb") as handle:
        value = unbake(handle)
    return {"unbaked": value.decode("utf-8") if isinstance(value, bytes) else value}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Open Badges 2.0 validator core, offline")
    parser.add_argument("input", nargs="?", help="URL, .png/.svg/.json path, or raw JSON/JWS")
    parser.add_argument("--recipient", help="expected recipient email (or URL, +telephone, Profile JSON)")
    parser.add_argument("--contexts", type=Path, default=None, help="folder with JSON-LD context files")
    parser.add_argument("--manifest", type=Path, default=None, help="JSON mapping context URL -> file")
    parser.add_argument("--check", action="store_true", help="only import the validator (venv smoke test)")
    parser.add_argument("--unbake", action="store_true", help="only print openbadges_bakery.unbake(INPUT)")
    args = parser.parse_args(argv)
    if args.input is None and not args.check:
        parser.error("INPUT is required")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    contexts = args.contexts or Path(os.environ.get("EBACKPACK_CONTEXTS_DIR", DEFAULT_CONTEXTS))
    if not contexts.is_dir():
        print(f"contexts folder not found: {contexts} (pass --contexts DIR)", file=sys.stderr)
        return 2
    offline = Offline(contexts, load_manifest(contexts, args.manifest))
    install_collections_aliases()
    guard_sockets()
    patch_requests(offline)
    patch_pyld(offline)
    if args.check or args.unbake:
        import openbadges  # noqa: F401  (a broken venv fails here, not in the middle of a test)

        print(json.dumps(unbake_only(Path(args.input)) if args.unbake else {"ok": True}))
        return 0
    try:
        result = run_verify(args.input, recipient_profile(args.recipient))
    except Exception as exc:
        result = crashed(exc)
    print(json.dumps(summarize(result, offline)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
