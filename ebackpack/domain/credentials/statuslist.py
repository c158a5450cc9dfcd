"""W3C Bitstring Status List v1.0: one bit per credential, set = revoked.

The list is GZIP-compressed and multibase base64url encoded (`u...`); at least 16 KiB (131,072
entries) so that a set bit does not tell which of a few learners was revoked. Bit 0 is the most
significant bit of the first byte.
"""

from __future__ import annotations

import base64
import gzip
from collections.abc import Iterable
from typing import Any

from .jsonld import CREDENTIALS_V2

LIST_SIZE = 131_072
PURPOSE = "revocation"


def encode(set_bits: Iterable[int], size: int = LIST_SIZE) -> str:
    bits = bytearray(size // 8)
    for index in set_bits:
        if not 0 <= index < size:
            raise ValueError(f"status index {index} outside the list (0..{size - 1})")
        bits[index // 8] |= 0x80 >> (index % 8)
    compressed = gzip.compress(bytes(bits), mtime=0)  # mtime=0: same list, same bytes
    return "u" + base64.urlsafe_b64encode(compressed).rstrip(b"=").decode()


def decode(encoded: str) -> bytes:
    if not encoded.startswith("u"):
        raise ValueError("encodedList is not multibase base64url (must start with 'u')")
    data = encoded[1:]
    return gzip.decompress(base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)))


def is_set(bits: bytes, index: int) -> bool:
    return bool(bits[index // 8] & (0x80 >> (index % 8)))


def entry(list_url: str, index: int | str) -> dict[str, str]:
    """The `credentialStatus` of one credential."""
    return {
        "id": f"{list_url}#{index}",
        "type": "BitstringStatusListEntry",
        "statusPurpose": PURPOSE,
        "statusListIndex": str(index),
        "statusListCredential": list_url,
    }


def list_credential(list_url: str, issuer: str, valid_from: str, revoked: Iterable[int]) -> dict[str, Any]:
    """The unsigned status list credential; the caller signs it like any other credential."""
    return {
        "@context": [CREDENTIALS_V2],
        "id": list_url,
        "type": ["VerifiableCredential", "BitstringStatusListCredential"],
        "issuer": issuer,
        "validFrom": valid_from,
        "credentialSubject": {
            "id": f"{list_url}#list",
            "type": "BitstringStatusList",
            "statusPurpose": PURPOSE,
            "encodedList": encode(revoked),
        },
    }
