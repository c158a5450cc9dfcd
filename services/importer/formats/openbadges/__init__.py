"""Open Badges 2.0 and 3.0: JSON, JWS / VC-JWT, and what baked images carry, into one Attestation.

Verification, strongest first:
- OB 3.0 Data Integrity (`eddsa-rdfc-2022`, `eddsa-2022`, `Ed25519Signature2020`) and VC-JWT: the
  signature against the key the proof names (see formats/keys.py for where keys come from);
- OB 2.0 hosted: the assertion as its issuer serves it at its `id` (network), or our own database;
- OB 2.0 signed (JWS): the key at `verification.creator`, listed in the issuer profile (network).
Then, in this order: the validity window (not yet valid = invalid), revocation (status list, revocation
list, 410 / `revoked`), expiry. A token that is unsigned, or whose algorithm is not a signature we accept,
is invalid before anything is fetched.

Modules: shapes (what a payload is, and its parser), data_integrity and vc_jwt (OB 3.0), ob2_hosted and
ob2_signed (OB 2.0), ob3_credential and ob2_assertion (the record and its verdict), tokens (compact JWS),
issuer_keys and documents (what issuers publish), revocation, verdict (how a verdict is assembled), fields.
"""
