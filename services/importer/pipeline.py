"""sniff -> parse -> verify -> normalize: one upload (or submitted URL) in, one Attestation out.

Pure apart from the context's callbacks: no Kafka, no database, no S3. Anything that is not an
attestation we can read raises ImportRejected with the reason the learner sees.
"""

from __future__ import annotations

from xml.parsers.expat import ExpatError

import defusedxml.minidom
from defusedxml import DefusedXmlException

from ebackpack.domain.attestations.sniff import Kind, sniff
from ebackpack.domain.credentials.baking import unbake_png, unbake_svg
from services.importer.domain import (
    Attestation,
    FetchError,
    ImportContext,
    ImportRejected,
    IssuerRef,
    RecipientMatch,
    SourceFormat,
    Verification,
    VerificationStatus,
    not_verifiable_offline,
    utf8_text,
)
from services.importer.formats.europass import looks_like_europass, parse_europass
from services.importer.formats.image import extract_image
from services.importer.formats.openbadges.fields import load_json_object
from services.importer.formats.openbadges.ob2_hosted import withdrawn_link
from services.importer.formats.openbadges.shapes import parse_payload
from services.importer.formats.pdf import PdfEvidence, read_pages, read_structure
from services.importer.verification_urls import RecognizedUrl, UrlKind, recognize

PNG_KEYWORDS = ("openbadgecredential", "openbadges")  # OB 3.0, then OB 2.0
MAX_BAKED_TEXT = 4 * 1024 * 1024  # a baked credential larger than this is refused, not inflated


def import_bytes(data: bytes, ctx: ImportContext) -> Attestation:
    kind = sniff(data).kind
    if kind is Kind.PNG:
        return _png(data, ctx)
    if kind is Kind.JPEG:
        return _photo(data, ctx)
    if kind is Kind.PDF:
        return _pdf(data, ctx)
    text = utf8_text(data)
    if kind is Kind.SVG:
        return _svg(text, ctx)
    if kind is Kind.JSON and looks_like_europass(load_json_object(text, "JSON upload")):
        return parse_europass(data, ctx)
    if kind is Kind.URL:
        return import_url(text.strip(), ctx)
    return parse_payload(text, ctx)


def _png(data: bytes, ctx: ImportContext) -> Attestation:
    for keyword in PNG_KEYWORDS:
        try:
            payload = unbake_png(data, keyword, max_text=MAX_BAKED_TEXT)
        except ValueError as exc:
            raise ImportRejected(f"the PNG's badge data cannot be read: {exc}") from None
        if payload:
            return parse_payload(payload, ctx, baked="png")
    return _photo(data, ctx)


def _svg(text: str, ctx: ImportContext) -> Attestation:
    try:  # entities and DTDs refused first: billion laughs, external entities
        defusedxml.minidom.parseString(text)  # a DOCTYPE is fine, entity declarations are not
        payload = unbake_svg(text)
    except (DefusedXmlException, ExpatError, ValueError) as exc:
        raise ImportRejected(f"the SVG is refused: {exc}") from None
    if not payload:
        raise ImportRejected("an SVG without Open Badges data: upload a PNG, JPEG or PDF of the certificate")
    return parse_payload(payload, ctx, baked="svg")


def _photo(data: bytes, ctx: ImportContext) -> Attestation:
    evidence = extract_image(data)
    found = _recognized(evidence.qr_texts, ctx)
    for link in found:
        if link.kind is UrlKind.OWN:
            return _own_link(link, ctx, SourceFormat.IMAGE, "a photo or scan with our QR code")
    return Attestation(
        source_format=SourceFormat.IMAGE,
        title=_link_title("Photo or scan", found),
        verification=_unverifiable_links(found, "a photo or scan carries no signature"),
        urls=list(evidence.qr_texts),
    )


def _recognized(texts: tuple[str, ...] | list[str], ctx: ImportContext) -> list[RecognizedUrl]:
    return [link for text in texts if (link := recognize(text, ctx.own_public_url))]


def _link_title(what: str, links: list[RecognizedUrl]) -> str:
    return f"{what} ({links[0].platform})" if links else what


def _unverifiable_links(links: list[RecognizedUrl], base: str) -> Verification:
    if not links:
        return Verification(
            status=VerificationStatus.NOT_VERIFIABLE,
            method="none",
            reason=f"{base}, and no verification link was found in it",
        )
    pages = "; ".join(f"{link.platform}: {link.url}" for link in links)
    return Verification(
        status=VerificationStatus.NOT_VERIFIABLE,
        method="verification link",
        reason=f"{base}; its issuer's verification page can confirm it: {pages}",
    )


def _own_link(link: RecognizedUrl, ctx: ImportContext, source: SourceFormat, what: str) -> Attestation:
    """Our own verification code: our database is the authority."""
    own = ctx.own_credential(link.code) if ctx.own_credential else None
    method = "our database (verification code)"
    if own is None:
        return Attestation(
            source_format=source,
            title=f"Unknown e-Backpack code {link.code}",
            urls=[link.url],
            verification=Verification(
                status=VerificationStatus.INVALID,
                method=method,
                reason=f"{what}, but we never issued code {link.code}",
            ),
        )
    email_ok = own.recipient_email.strip().lower() == ctx.learner.email.strip().lower()
    status, reason = VerificationStatus.VERIFIED, f"{what}: issued by us, found in our database"
    if own.revoked:
        status, reason = (
            VerificationStatus.REVOKED,
            f"revoked by us: {own.revoked_reason or 'no reason given'}",
        )
    elif own.expires_on is not None and own.expires_on <= ctx.now:
        status, reason = VerificationStatus.EXPIRED, f"expired on {own.expires_on.date().isoformat()}"
    return Attestation(
        source_format=source,
        title=own.title,
        issuer=IssuerRef(name=own.issuer_name, url=own.issuer_url),
        issued_on=own.issued_on,
        expires_on=own.expires_on,
        recipient=RecipientMatch.MATCH if email_ok else RecipientMatch.MISMATCH,
        recipient_detail="our record's e-mail is the learner's"
        if email_ok
        else "our record names another learner",
        verification=Verification(status=status, method=method, reason=reason),
        urls=[link.url],
    )


def _pdf(data: bytes, ctx: ImportContext) -> Attestation:
    structure = read_structure(data)
    embedded = _embedded_credential(structure.attachments, ctx)
    if embedded is not None:  # the attached credential decides: no page is rendered or read
        verification = embedded.verification.model_copy(
            update={"method": f"credential attached to the PDF: {embedded.verification.method}"}
        )
        return embedded.model_copy(
            update={
                "source_format": SourceFormat.PDF,
                "urls": list(structure.links),
                "verification": verification,
            }
        )
    text, qr_texts = read_pages(data, structure.page_count)
    return _pdf_pages(
        PdfEvidence(
            structure.page_count, structure.metadata, text, structure.links, structure.attachments, qr_texts
        ),
        ctx,
    )


def _pdf_pages(evidence: PdfEvidence, ctx: ImportContext) -> Attestation:
    """A PDF without an attached credential: what its pages say (our QR code or link, else its text)."""
    urls = list(dict.fromkeys([*evidence.qr_texts, *evidence.links]))
    links = _recognized(urls, ctx)
    for link in links:
        if link.kind is UrlKind.OWN:
            return _own_link(link, ctx, SourceFormat.PDF, "a PDF with our verification link")
    meta = evidence.metadata
    first_line = next((line.strip() for line in evidence.text.splitlines() if line.strip()), "")
    return Attestation(
        source_format=SourceFormat.PDF,
        title=_link_title(meta.title or first_line[:200] or "PDF certificate", links),
        issuer=IssuerRef(name=meta.author),
        issued_on=meta.created,
        description=meta.subject,
        verification=_unverifiable_links(links, "a PDF certificate carries no signature we can check"),
        urls=urls,
    )


def _embedded_credential(attachments: dict[str, bytes], ctx: ImportContext) -> Attestation | None:
    """A PDF with an attached Open Badges credential (ours attach `credential.json`) verifies by it."""
    for name, content in attachments.items():
        if not name.lower().endswith((".json", ".jwt")):
            continue
        try:
            return parse_payload(content.decode("utf-8"), ctx)
        except (ImportRejected, UnicodeDecodeError):
            continue
    return None


def import_url(url: str, ctx: ImportContext) -> Attestation:
    """A submitted link: our own verification page or assertion, a hosted assertion, another platform's
    verification page."""
    link = recognize(url, ctx.own_public_url)
    if link is not None and link.kind is UrlKind.OWN:
        return _own_link(link, ctx, SourceFormat.URL, "a link to our verification page")
    assertions = f"{(ctx.own_public_url or '').rstrip('/')}/ob2/assertions/"
    if ctx.own_public_url and url.startswith(assertions):
        code = url.removeprefix(assertions).split("/")[0].split("?")[0]
        own_assertion = RecognizedUrl(UrlKind.OWN, "e-Backpack", code, url)
        return _own_link(own_assertion, ctx, SourceFormat.OB2_HOSTED, "a link to our hosted badge")
    if ctx.fetcher is None:
        return Attestation(
            source_format=SourceFormat.URL,
            title=_link_title("Link", [link] if link else []),
            urls=[url],
            verification=Verification(
                status=VerificationStatus.NOT_VERIFIABLE, method="none", reason=not_verifiable_offline(url)
            ),
        )
    try:
        body = ctx.fetcher.get(url, accept="application/ld+json, application/json, text/html")
    except FetchError as exc:
        if (withdrawn := withdrawn_link(url, exc)) is not None:  # 410 Gone: OB 2.0's "revoked"
            return withdrawn
        raise ImportRejected(f"the link could not be fetched: {exc}") from None
    if body.lstrip()[:1] == b"{":
        attestation = parse_payload(utf8_text(body), ctx)
        return attestation.model_copy(
            update={
                "source_format": SourceFormat.OB2_HOSTED
                if attestation.source_format is SourceFormat.OB2_JSON
                else attestation.source_format,
                "urls": [url],
            }
        )
    links = [link] if link else []
    return Attestation(
        source_format=SourceFormat.URL,
        title=_link_title("Verification page", links),
        urls=[url],
        verification=_unverifiable_links(links, "a web page, not a signed credential"),
    )
