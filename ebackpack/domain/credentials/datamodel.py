"""The W3C Verifiable Credentials Data Model 2.0 rules a credential must meet before we sign it (VC-API
`/credentials/issue`) or call it verified (`/credentials/verify`): required properties, identifiers that
are URLs, typed objects, date-time stamps, language values, and a JSON-LD context that expands (only
bundled contexts, no network) with every property defined, every type an absolute IRI and no protected
term redefined.

`problems(credential)` lists what is wrong, in words a caller can act on; empty means it meets them.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any

from pyld import jsonld

from .jsonld import (
    CREDENTIALS_V1,
    CREDENTIALS_V2,
    CanonicalizationRefused,
    UnknownContextError,
    check_size,
    offline_loader,
)

# XML Schema dateTimeStamp: a date-time with a time zone (VC 2.0 sec. 4.9)
DATE_TIME_STAMP = re.compile(
    r"-?\d{4,}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)(\.\d+)?"
    r"(Z|[+-]((0\d|1[0-3]):[0-5]\d|14:00))"
)
# An absolute URL or other IRI: a scheme, then no spaces (`https ://x` is not one)
IRI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[^\s<>\"{}|\\^`]+")
# Digests the W3C publishes for the base context (VC 2.0, appendix B.1), of the bytes served at its URL
# (our bundled copy is the same context, not the same bytes).
PUBLISHED_DIGESTS = {
    CREDENTIALS_V2: {
        "sha384": base64.b64decode("NSOcNpmdIVUxIJGvGUoe22FjTWrXiaXlsZ8q6912LdnR3KraQO2n75Ica4wK4Qeg"),
        "sha256": bytes.fromhex("24a18c90e9856d526111f29376e302d970b2bd10182e33959995b0207d7043b9"),
    }
}
TYPED = ("credentialStatus", "credentialSchema", "evidence", "refreshService", "termsOfUse", "proof")


def is_url(value: object) -> bool:
    return isinstance(value, str) and IRI.fullmatch(value) is not None


def problems(credential: object) -> list[str]:
    if not isinstance(credential, dict):
        return ["the credential is not a JSON object"]
    found = [
        *_context(credential.get("@context")),
        *_types(credential.get("type")),
        *_identifier("id", credential, required=False),
        *_issuer(credential.get("issuer")),
        *_subjects(credential.get("credentialSubject")),
        *_validity(credential),
        *_language_values(credential),
    ]
    for name in TYPED:
        found += _typed(name, credential.get(name))
    if "credentialSchema" in credential:
        found += [
            f"credentialSchema needs an id that is a URL: {schema.get('id')!r}"
            for schema in _objects(credential["credentialSchema"])
            if not is_url(schema.get("id"))
        ]
    for status in _objects(credential.get("credentialStatus")):
        found += _identifier("id", status, required=False, what="credentialStatus")
    if "relatedResource" in credential:
        found += _related_resources(credential["relatedResource"])
    if not found:
        found += expansion_problems(credential)
    return found


def expansion_problems(document: dict[str, Any]) -> list[str]:
    """JSON-LD expansion with the bundled contexts: a protected term redefined, an unknown context or a
    type that does not expand to an absolute IRI is a problem."""
    dropped: list[str] = []
    try:
        check_size(document)
        expanded = jsonld.expand(
            document,
            # no base IRI: a relative type stays relative (pyld would resolve it against example.org)
            {"documentLoader": offline_loader, "base": None},
            on_property_dropped=lambda term: dropped.append(str(term)),
        )
    except (UnknownContextError, CanonicalizationRefused) as exc:
        return [str(exc)]
    except jsonld.JsonLdError as exc:
        return [f"the JSON-LD context does not expand: {_first_cause(exc)}"]
    except (KeyError, TypeError, ValueError, RecursionError) as exc:  # pyld on odd contexts
        return [f"the JSON-LD context does not expand ({type(exc).__name__})"]
    # A property no context defines is dropped by JSON-LD: a proof would not cover it (JSON-LD "safe
    # mode", as Digital Bazaar's verifiers apply it).
    found = [
        f"property {term!r} is not defined by any @context: a proof would not cover it"
        for term in sorted(set(dropped))
    ]
    bad = sorted({t for t in _expanded_types(expanded) if not is_url(t) or t.startswith("_:")})
    return found + [f"type {t!r} does not expand to a URL (define it in a context)" for t in bad]


def _first_cause(exc: BaseException) -> str:
    """The innermost reason pyld gives (an unknown context says which)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, jsonld.JsonLdError):
        return f"{exc.code or exc.type}: {exc.details or ''}"[:200]
    return str(exc).splitlines()[0][:200]


def _expanded_types(node: Any) -> list[str]:
    found: list[str] = []
    pending = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            types = item.get("@type", [])
            if "@value" not in item:  # a value's @type is a datatype
                found += [t for t in (types if isinstance(types, list) else [types]) if isinstance(t, str)]
            pending.extend(v for k, v in item.items() if k != "@type")
    return found


def version(credential: dict[str, Any]) -> str | None:
    """ "2.0" or "1.1" by the first @context (VC 1.1 is still read and signed: wallets and suites use it)."""
    context = credential.get("@context")
    first = (context[0] if context else None) if isinstance(context, list) else context
    return {CREDENTIALS_V2: "2.0", CREDENTIALS_V1: "1.1"}.get(first) if isinstance(first, str) else None


def _context(context: object) -> list[str]:
    if context is None:
        return ["@context is missing"]
    contexts = context if isinstance(context, list) else [context]
    if not contexts or contexts[0] not in (CREDENTIALS_V2, CREDENTIALS_V1):
        return [f"the first @context must be {CREDENTIALS_V2} (or {CREDENTIALS_V1} for VC 1.1)"]
    return [
        f"@context entry {entry!r} is neither a URL nor an object"
        for entry in contexts[1:]
        if not (isinstance(entry, dict) or is_url(entry))
    ]


def _types(types: object, required: str = "VerifiableCredential") -> list[str]:
    listed = types if isinstance(types, list) else [types]
    if types is None or not all(isinstance(t, str) and t for t in listed):
        return ["type must be a string or a list of strings"]
    return [] if required in listed else [f"type must include {required}"]


def _identifier(
    name: str, node: dict[str, Any], *, required: bool, what: str = "the credential"
) -> list[str]:
    if name not in node:
        return [f"{what} needs an {name}"] if required else []
    value = node[name]
    if isinstance(value, list):
        return [f"{what} has more than one {name}"]
    return [] if is_url(value) else [f"the {name} of {what} must be a URL, not {value!r}"]


def _issuer(issuer: object) -> list[str]:
    return ["issuer is missing"] if issuer is None else _party("issuer", issuer)


def _party(name: str, value: object) -> list[str]:
    """An issuer or holder: a URL, or an object whose `id` is one."""
    if isinstance(value, dict):
        return _identifier("id", value, required=True, what=f"the {name}")
    return [] if is_url(value) else [f"{name} must be a URL or an object with one, not {value!r}"]


def _subjects(subject: object) -> list[str]:
    subjects = subject if isinstance(subject, list) else [subject]
    if subject is None or not subjects:
        return ["credentialSubject is missing"]
    found: list[str] = []
    for item in subjects:
        if not isinstance(item, dict) or not item:
            found.append("each credentialSubject must be an object with at least one claim")
        else:
            found += _identifier("id", item, required=False, what="a credentialSubject")
    return found


def validity_names(credential: dict[str, Any]) -> tuple[str, str]:
    """The properties of the validity period: VC 2.0's, or VC 1.1's (where issuanceDate is required)."""
    return ("issuanceDate", "expirationDate") if version(credential) == "1.1" else ("validFrom", "validUntil")


def validity_period(credential: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """When the credential starts and stops being valid, as far as it says (after `problems` found no
    fault with them)."""
    starts, ends = validity_names(credential)
    return _moment(credential.get(starts)), _moment(credential.get(ends))


def _moment(value: object) -> datetime | None:
    if not isinstance(value, str) or DATE_TIME_STAMP.fullmatch(value) is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _validity(credential: dict[str, Any]) -> list[str]:
    found: list[str] = []
    moments: dict[str, datetime] = {}
    starts, ends = validity_names(credential)
    if starts == "issuanceDate" and "issuanceDate" not in credential:
        found.append("a VC 1.1 credential needs an issuanceDate")
    for name in (starts, ends):
        value = credential.get(name)
        if value is None and name not in credential:
            continue
        if not isinstance(value, str) or DATE_TIME_STAMP.fullmatch(value) is None:
            found.append(f"{name} must be a date-time with a time zone (XML Schema dateTimeStamp)")
        elif (moment := _moment(value)) is None:
            found.append(f"{name} is not a date this processor reads: {value}")
        else:
            moments[name] = moment
    if len(moments) == 2 and moments[ends] < moments[starts]:
        found.append(f"{ends} is before {starts}")
    return found


def _related_resources(value: object) -> list[str]:
    """VC 2.0 sec. 5.3: objects with a unique URL `id` and a digest; a digest of a resource whose
    published digests we know (the base context) must match them (nothing is fetched)."""
    items: list[Any] = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, dict) for item in items):
        return ["each relatedResource must be an object with an id and a digest"]
    found: list[str] = []
    ids = [item.get("id") for item in items]
    if len(set(map(str, ids))) != len(ids):
        found.append("relatedResource ids must be unique")
    for item in items:
        found += _identifier("id", item, required=True, what="a relatedResource")
        if "digestSRI" not in item and "digestMultibase" not in item:
            found.append(f"relatedResource {item.get('id')} needs a digestSRI or a digestMultibase")
        found += _digest_problems(item)
    return found


def _digest_problems(item: dict[str, Any]) -> list[str]:
    known = PUBLISHED_DIGESTS.get(str(item.get("id")))
    if known is None:
        return []
    found = []
    sri = item.get("digestSRI")
    if sri is not None:
        algorithm, _, value = str(sri).partition("-")
        if algorithm in known and known[algorithm] != _b64_bytes(value, urlsafe=False):
            found.append(f"relatedResource {item['id']}: the digestSRI does not match the resource")
    multibase = item.get("digestMultibase")
    if multibase is not None:
        text = str(multibase)
        digest = _b64_bytes(text[1:], urlsafe=True) if text.startswith("u") else None
        if digest is None or digest not in known.values():
            found.append(f"relatedResource {item['id']}: the digestMultibase does not match the resource")
    return found


def _b64_bytes(text: str, *, urlsafe: bool) -> bytes | None:
    try:
        padded = text + "=" * (-len(text) % 4)
        return base64.urlsafe_b64decode(padded) if urlsafe else base64.b64decode(padded, validate=True)
    except ValueError:
        return None


def _typed(name: str, value: object) -> list[str]:
    if value is None:
        return []
    items: list[Any] = value if isinstance(value, list) else [value]
    if not all(isinstance(item, dict) for item in items):
        return [f"each {name} must be an object"]
    return [f"each {name} needs a type" for item in items if not item.get("type")][:1]


def _language_values(credential: dict[str, Any]) -> list[str]:
    found: list[str] = []
    nodes: list[tuple[str, Any]] = [("the credential", credential)]
    issuer = credential.get("issuer")
    if isinstance(issuer, dict):
        nodes.append(("the issuer", issuer))
    for where, node in nodes:
        for name in ("name", "description"):
            if name in node and not _is_language_value(node[name]):
                found.append(f"{name} of {where} must be a string or language value objects")
    return found


def _is_language_value(value: object) -> bool:
    values = value if isinstance(value, list) else [value]
    return bool(values) and all(
        isinstance(v, str)
        or (
            isinstance(v, dict)
            and isinstance(v.get("@value"), str)
            and set(v) <= {"@value", "@language", "@direction"}
            and all(isinstance(v.get(k, ""), str) for k in ("@language", "@direction"))
        )
        for v in values
    )


def _objects(value: object) -> list[dict[str, Any]]:
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict)]


ENVELOPED = "EnvelopedVerifiableCredential"


def presentation_problems(presentation: object) -> list[str]:
    """VC 2.0 sec. 4.13: a presentation's own rules, and each credential it holds: an object (a
    credential, checked by `problems`, or an enveloped one with its data: URL), never a bare string."""
    if not isinstance(presentation, dict):
        return ["the presentation is not a JSON object"]
    found = [
        *_context(presentation.get("@context")),
        *_identifier("id", presentation, required=False),
        *_types(presentation.get("type"), "VerifiablePresentation"),
    ]
    if presentation.get("holder") is not None:
        found += _party("holder", presentation["holder"])
    for index, credential in enumerate(credentials_of(presentation)):
        found += [f"verifiableCredential[{index}]: {problem}" for problem in _held(credential)]
    if not found:
        found += expansion_problems(presentation)
    return found


def is_enveloped(credential: dict[str, Any]) -> bool:
    return credential.get("type") in (ENVELOPED, [ENVELOPED])


def credentials_of(presentation: dict[str, Any]) -> list[Any]:
    held = presentation.get("verifiableCredential")
    return [] if held is None else held if isinstance(held, list) else [held]


def _held(credential: object) -> list[str]:
    if not isinstance(credential, dict):
        return ["must be a credential object, not a string, number or URL"]
    if is_enveloped(credential):
        envelope = credential.get("id")
        ok = isinstance(envelope, str) and envelope.startswith("data:")
        return [] if ok else ["an EnvelopedVerifiableCredential needs a data: URL id"]
    return problems(credential)
