"""OB 2.0 signed assertions (JWS), as the 1EdTech validator checks them: the signature with the creator key
(or a key the issuer profile declares), the key listed in the issuer's profile, its revocation list."""

from __future__ import annotations

from typing import Any

from services.importer.domain import (
    Attestation,
    ImportContext,
    Said,
    SourceFormat,
    VerificationStatus,
    not_yet_valid,
    offline,
    say,
)
from services.importer.formats.keys import KeyUnavailable, ResolvedKey, issuer_origin
from services.importer.formats.openbadges.documents import Documents, badge_issuer_id, issuer_profile
from services.importer.formats.openbadges.fields import issuer_id_of
from services.importer.formats.openbadges.issuer_keys import creator_key
from services.importer.formats.openbadges.ob2_assertion import ob2_result, ob2_window
from services.importer.formats.openbadges.revocation import ob2_revocation
from services.importer.formats.openbadges.tokens import (
    header_problem,
    jws_parts,
    key_problem,
    signed_token_check,
    verify_jws,
)
from services.importer.formats.openbadges.verdict import NOT_CHECKED, Check, Revocation


def parse_ob2_jws(token: str, ctx: ImportContext, source: SourceFormat = SourceFormat.OB2_JWS) -> Attestation:
    header, assertion = jws_parts(token)
    verification = assertion.get("verification")
    creator = str(verification.get("creator", "")) if isinstance(verification, dict) else ""
    method = f"OB 2.0 signed assertion ({str(header.get('alg', '?'))[:40]})"
    docs = Documents(ctx)
    check, revocation = Check(VerificationStatus.NOT_VERIFIABLE, method, say("not checked")), NOT_CHECKED
    if problem := header_problem(header, token):
        check, docs.enabled = Check(VerificationStatus.INVALID, method, problem), False
    elif ctx.fetcher is None:
        where = say("the key at {url}", url=creator) if creator else say("the issuer profile's keys")
        check = Check(VerificationStatus.NOT_VERIFIABLE, method, offline(where))
        revocation = Revocation(note=offline(say("the issuer's revocation list")))
    else:
        found = creator or _signing_key_in_profile(token, header, assertion, docs, method)
        if isinstance(found, Check):
            check = found
        else:
            check, revocation = _ob2_signed_check(token, header, found, assertion, docs, method)
    return ob2_result(assertion, check, revocation, source, docs, token.strip())


def _ob2_signed_check(
    token: str, header: dict[str, Any], creator: str, assertion: dict[str, Any], docs: Documents, method: str
) -> tuple[Check, Revocation]:
    """The 1EdTech validator's steps: the signature with the creator key, the key listed in the issuer
    profile the issuer serves at its id (`verify_key_ownership`), the assertion not in the issuer's
    `revocationList` (`verify_signed_assertion_not_revoked`)."""
    try:
        key = creator_key(creator, docs)
    except KeyUnavailable as exc:
        return Check(VerificationStatus.NOT_VERIFIABLE, method, exc.reason), NOT_CHECKED
    if failed := signed_token_check(token, header, key, method):
        return failed, NOT_CHECKED
    if not_yet_valid(ob2_window(assertion).start, docs.ctx.now):  # invalid anyway: nothing more to fetch
        return Check(
            VerificationStatus.ISSUER_UNKNOWN, method, say("signature valid with {source}", source=key.source)
        ), NOT_CHECKED
    badge = docs.node(assertion.get("badge"))
    issuer_id = issuer_id_of(badge.get("issuer"))
    profile, problem = issuer_profile(issuer_id, docs)
    return _key_ownership(key, creator, issuer_id, profile, problem, docs, method), ob2_revocation(
        assertion, profile or _embedded_issuer(badge), problem, docs
    )


MAX_PROFILE_KEYS = 5  # keys of an issuer profile tried for an assertion that names none


def _signing_key_in_profile(
    token: str, header: dict[str, Any], assertion: dict[str, Any], docs: Documents, method: str
) -> str | Check:
    """OB 2.0: without `verification.creator`, the verifier tries the keys the issuer profile declares
    (`publicKey`). The id of the one that made the signature, or the check that none did."""
    issuer_id = badge_issuer_id(assertion.get("badge"), docs)
    profile, problem = issuer_profile(issuer_id, docs)
    if profile is None:
        return Check(
            VerificationStatus.NOT_VERIFIABLE,
            method,
            say(
                "the assertion names no signing key (creator), and the issuer profile could not be read: "
                "{why}",
                why=problem or say("no issuer profile"),
            ),
        )
    key_id, tried = _key_that_signed(token, str(header["alg"]), _declared_keys(profile), docs)
    if key_id is not None:
        return key_id
    if tried:
        return Check(
            VerificationStatus.INVALID,
            method,
            say(
                "the signature matches none of the {count} keys the issuer profile {issuer} declares",
                count=tried,
                issuer=issuer_id,
            ),
        )
    return Check(
        VerificationStatus.NOT_VERIFIABLE,
        method,
        say(
            "the assertion names no signing key (creator), and the issuer profile {issuer} declares none "
            "we can read",
            issuer=issuer_id,
        ),
    )


def _declared_keys(profile: dict[str, Any]) -> list[tuple[str, dict[str, Any] | None]]:
    """The first keys the profile declares: (id, the key document when the profile embeds it with its PEM)."""
    declared = profile.get("publicKey")
    keys = []
    for entry in (declared if isinstance(declared, list) else [declared])[:MAX_PROFILE_KEYS]:
        key_id = str(entry.get("id", "")) if isinstance(entry, dict) else str(entry or "")
        if key_id:
            embedded = entry if isinstance(entry, dict) and entry.get("publicKeyPem") else None
            keys.append((key_id, embedded))
    return keys


def _key_that_signed(
    token: str, alg: str, declared: list[tuple[str, dict[str, Any] | None]], docs: Documents
) -> tuple[str | None, int]:
    """(the id of the first declared key the signature checks with, how many keys could be read)."""
    tried = 0
    for key_id, embedded in declared:
        if embedded is not None:
            docs.remember(key_id, embedded)  # embedded in the profile: no fetch
        try:
            key = creator_key(key_id, docs)
        except KeyUnavailable:
            continue
        tried += 1
        if _made_by(token, alg, key):
            return key_id, tried
    return None, tried


def _made_by(token: str, alg: str, key: ResolvedKey) -> bool:
    if key_problem(alg, key.jwk) is not None:
        return False
    try:
        verify_jws(token, key, alg)
    except ValueError:
        return False
    return True


def _listed_keys(public_key: Any) -> set[str]:
    entries = public_key if isinstance(public_key, list) else [public_key]
    return {str(e.get("id")) if isinstance(e, dict) else str(e) for e in entries if isinstance(e, dict | str)}


def _embedded_issuer(badge: dict[str, Any]) -> dict[str, Any] | None:
    """An issuer the badge class embeds, for an issuer without a profile URL. An issuer with one is read
    only from there: an embedded copy without its `revocationList` must not stand in for it."""
    issuer = badge.get("issuer")
    if not isinstance(issuer, dict) or str(issuer.get("id", "")).startswith(("https://", "http://")):
        return None
    return issuer


def _key_ownership(
    key: ResolvedKey,
    creator: str,
    issuer_id: str | None,
    profile: dict[str, Any] | None,
    problem: Said | None,
    docs: Documents,
    method: str,
) -> Check:
    """The creator key is the issuer's when the profile served at the issuer's https id lists it; else a
    trusted issuer's key, or a valid signature by an unknown one."""
    why = _not_listed_because(creator, issuer_id, profile, problem)
    if why is None:
        return Check(
            VerificationStatus.VERIFIED,
            method,
            say(
                "signature valid with the key at {key}, which the issuer profile served at {issuer} "
                "lists as its own",
                key=creator,
                issuer=issuer_id,
            ),
        )
    if issuer_id in docs.ctx.trusted_issuers and key.speaks_for(issuer_id):
        return Check(
            VerificationStatus.VERIFIED,
            method,
            say("signature valid ({source}); trusted issuer {issuer}", source=key.source, issuer=issuer_id),
        )
    return Check(
        VerificationStatus.ISSUER_UNKNOWN,
        method,
        say(
            "signature valid with the key at {key}, but it is not shown to be the issuer's: {why}; "
            "the issuer is not on our list of trusted issuers",
            key=creator,
            why=why,
        ),
    )


def _not_listed_because(
    creator: str, issuer_id: str | None, profile: dict[str, Any] | None, problem: Said | None
) -> Said | None:
    """Why the issuer profile does not show the creator key to be the issuer's, or None when it does."""
    if profile is None:
        return problem or say("no issuer profile")
    if creator not in _listed_keys(profile.get("publicKey")):
        return say("the issuer profile {issuer} does not list the key (publicKey)", issuer=issuer_id)
    if issuer_origin(issuer_id) is None:
        return say("the issuer profile {issuer} is not served over https", issuer=issuer_id)
    return None
