"""OB 3.0 as a VC-JWT: the token's signature against the key its header or its issuer names."""

from __future__ import annotations

from typing import Any

from services.importer.domain import Attestation, ImportContext, SourceFormat, VerificationStatus
from services.importer.formats.keys import KeyUnavailable
from services.importer.formats.openbadges.fields import issuer_id_of
from services.importer.formats.openbadges.issuer_keys import token_key
from services.importer.formats.openbadges.ob3_credential import ob3_result
from services.importer.formats.openbadges.tokens import header_problem, jws_parts, signed_token_check
from services.importer.formats.openbadges.verdict import Check, key_standing


def parse_ob3_jwt(token: str, ctx: ImportContext, source: SourceFormat = SourceFormat.OB3_JWT) -> Attestation:
    header, claims = jws_parts(token)
    vc = claims.get("vc")
    credential: dict[str, Any] = vc if isinstance(vc, dict) else claims
    issuer_id = issuer_id_of(credential.get("issuer")) or issuer_id_of(claims.get("iss"))
    method = f"VC-JWT {str(header.get('alg', '?'))[:40]}"
    check: Check
    if problem := header_problem(header, token):
        check = Check(VerificationStatus.INVALID, method, problem)
    else:
        try:
            key = token_key(header, issuer_id, ctx)
            check = signed_token_check(token, header, key) or key_standing(key, issuer_id, ctx, method)
        except KeyUnavailable as exc:
            check = Check(VerificationStatus.NOT_VERIFIABLE, method, exc.reason)
    return ob3_result(credential, check, source, ctx, token.strip(), claims)
