"""The notifier's pure core: what a learner is told about a credential, per channel and language.

No Kafka, no database, no network. A `Notice` (what happened: issued, revoked, expiry coming) plus the
`Recipient` and the `Site` go in; `compose()` gives the `Content` (subject, heading, paragraphs, facts,
links) in the learner's language (Polish or English), and `email_bodies()` / `moodle_html()` render it
with the Jinja2 templates beside this file: an e-mail's plain text and accessible HTML (a `lang`
attribute, a real `<title>`, headings, link texts that make sense alone, no layout tables, AA contrast),
and the HTML fragment of a Moodle message.
"""

from __future__ import annotations

import json
import math
import re
import textwrap
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import MessageError
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from pydantic import BaseModel

from ebackpack.domain import i18n
from ebackpack.domain.errors import InvalidMessage, parse_message
from ebackpack.domain.i18n import supported_language
from ebackpack.domain.notifications import CHANNELS as CHANNELS
from ebackpack.domain.notifications import KINDS as KINDS
from ebackpack.domain.notifications import Channel as Channel
from ebackpack.domain.notifications import Kind
from ebackpack.domain.notifications import read_unsubscribe_token as read_unsubscribe_token
from ebackpack.domain.notifications import unsubscribe_token as unsubscribe_token
from ebackpack.plurals import DAYS, quantity
from schemas import CredentialIssuedMessage, CredentialRevokedMessage, deterministic_id
from schemas.credentials import LIVE, Origin

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"

ISSUED_TYPE = CredentialIssuedMessage.TYPE
REVOKED_TYPE = CredentialRevokedMessage.TYPE


class Notice(BaseModel):
    """What happened, as far as the learner is concerned. Stored with each notification (a retry needs
    no Kafka message), so it holds no personal data beyond the learner id."""

    kind: Kind
    event_id: str
    learner_id: int
    credential_id: str
    verification_code: str
    at: datetime  # issued on / revoked at / when the reminder fell due
    achievement: str | None = None
    course_id: int | None = None
    badge: bool = False
    certificate: bool = False
    valid_until: datetime | None = None
    reason: str | None = None
    origin: Origin = LIVE  # issued: `backfill` for a credential awarded from history


def notice_from_event(raw: bytes) -> Notice | None:
    """A `credentials` message -> its notice; None for one the learner is not told about (expired: the
    reminder came before; a type this notifier does not know: the contract only adds types).

    Raises InvalidMessage for bytes that are no event, or an event that breaks its schema."""
    try:
        envelope = json.loads(raw)
    except ValueError as exc:
        raise InvalidMessage("not JSON") from exc
    if not isinstance(envelope, dict) or not isinstance(envelope.get("type"), str):
        raise InvalidMessage("not a CloudEvent: no `type`")
    if envelope["type"] == ISSUED_TYPE:
        issued = parse_message(CredentialIssuedMessage, raw)
        data = issued.data
        return _notice(
            "issued",
            issued,
            at=data.issued_on,
            achievement=data.achievement.name,
            course_id=data.course_id,
            badge=data.badge,
            certificate=data.certificate,
            valid_until=data.valid_until,
            origin=data.origin,
        )
    if envelope["type"] == REVOKED_TYPE:
        revoked = parse_message(CredentialRevokedMessage, raw)
        return _notice("revoked", revoked, at=revoked.data.revoked_at, reason=revoked.data.reason)
    return None


def _notice(
    kind: Kind, event: CredentialIssuedMessage | CredentialRevokedMessage, at: datetime, **details: Any
) -> Notice:
    """What every notice names: the event, the learner, the credential and its code."""
    return Notice(
        kind=kind,
        event_id=event.id,
        learner_id=event.data.learner_id,
        credential_id=event.data.credential_id,
        verification_code=event.data.verification_code,
        at=at,
        **details,
    )


def reminder_id(credential_id: str, valid_until: datetime) -> str:
    """The expiry reminder's own event id: one per credential and validity period."""
    expires = int(as_utc(valid_until).timestamp())
    return deterministic_id("notification.expiry-reminder", credential_id, expires)


def as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def message_id(event_id: str, channel: str, mail_from: str) -> str:
    """Stable per (event, channel): a re-sent copy carries the same Message-ID, so mail clients and
    servers that de-duplicate on it show it once."""
    domain = parseaddr(mail_from)[1].rpartition("@")[2] or "ebackpack.invalid"
    return f"<{deterministic_id('notification', event_id, channel)}@{domain}>"


# ---------------------------------------------------------------------------------- e-mail addresses

MAX_ADDRESS = 254  # RFC 5321: the longest path a server must accept (local part at most 64)


class InvalidRecipient(ValueError):
    """The learner's e-mail address (from Moodle) cannot be sent to: no retry can help."""


def recipient_address(address: str) -> str:
    """The address as it goes into `To:` (domain in ASCII, IDNA); InvalidRecipient, with the reason,
    for one that is no single valid address: CR/LF or other control characters (header injection), a
    display name or a second address, a non-ASCII local part (SMTPUTF8 is not used), over-long parts."""
    if any(ch in address for ch in "\r\n"):
        raise InvalidRecipient("the e-mail address contains a line break (CR or LF)")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in address):
        raise InvalidRecipient("the e-mail address contains control characters")
    if len(address) > MAX_ADDRESS:
        raise InvalidRecipient(f"the e-mail address is longer than {MAX_ADDRESS} characters")
    try:
        parsed = Address(addr_spec=address.strip())
        domain = parsed.domain.encode("idna").decode("ascii")
        normalized = Address(username=parsed.username, domain=domain).addr_spec
    except (ValueError, MessageError, UnicodeError, IndexError):  # (the parser's text quotes the address)
        raise InvalidRecipient("the e-mail address is not one valid address (RFC 5322 addr-spec)") from None
    if not parsed.username or not domain or len(parsed.username) > 64 or not normalized.isascii():
        raise InvalidRecipient(
            "the e-mail address is not valid: a local part of at most 64 ASCII "
            "characters and a domain are needed"
        )
    return normalized


# C0, DEL, C1 (NEL) and Unicode line breaks, with the spaces around them
_CONTROLS = re.compile(r"[ \t]*[\x00-\x1f\x7f-\x9f\u2028\u2029]+[ \t]*")


def one_line(text: str) -> str:
    """Header text (a name, a subject) from data that may hold line breaks: each run of control
    characters becomes one space, so nothing can start a header of its own."""
    return _CONTROLS.sub(" ", text).strip()


# ------------------------------------------------------------------------------------------ languages

POLISH: dict[str, str] = {
    # subjects
    "Your new badge and certificate: {achievement}": "Nowa odznaka i zaświadczenie: {achievement}",
    "Your new badge: {achievement}": "Nowa odznaka: {achievement}",
    "Your new certificate: {achievement}": "Nowe zaświadczenie: {achievement}",
    "Your credential was revoked: {achievement}": "Poświadczenie unieważnione: {achievement}",
    "Your credential expires on {date}: {achievement}": "Poświadczenie wygasa {date}: {achievement}",
    # greeting and headings
    "Hello {name},": "Dzień dobry,",
    "Congratulations on “{achievement}”": "Gratulujemy: „{achievement}”",
    "“{achievement}” has been revoked": "Poświadczenie „{achievement}” zostało unieważnione",
    "Time to recertify: “{achievement}”": "Czas na recertyfikację: „{achievement}”",
    "Details": "Szczegóły",
    # issued
    "{issuer} has awarded you a digital badge and a PDF certificate for completing the course “{course}”.": "{issuer} przyznaje Ci odznakę cyfrową i zaświadczenie PDF za ukończenie kursu „{course}”.",
    "{issuer} has awarded you a digital badge for completing the course “{course}”.": "{issuer} przyznaje Ci odznakę cyfrową za ukończenie kursu „{course}”.",
    "{issuer} has awarded you a PDF certificate for completing the course “{course}”.": "{issuer} przyznaje Ci zaświadczenie PDF za ukończenie kursu „{course}”.",
    "In your e-Backpack you can download, print and share your credentials.": "W e-Plecaku możesz pobierać, drukować i udostępniać swoje poświadczenia.",
    "Open the badge “{achievement}” in your e-Backpack": "Otwórz odznakę „{achievement}” w e-Plecaku",
    "Open the certificate “{achievement}” in your e-Backpack": "Otwórz zaświadczenie „{achievement}” w e-Plecaku",
    "Download the PDF certificate “{achievement}”": "Pobierz zaświadczenie PDF „{achievement}”",
    "Public verification page of “{achievement}”": "Publiczna strona weryfikacji „{achievement}”",
    # revoked
    "The issuer, {issuer}, revoked your credential “{achievement}” on {date}.": "Wydawca, {issuer}, unieważnił Twoje poświadczenie „{achievement}” dnia {date}.",
    "Reason: {reason}": "Powód: {reason}",
    "Anyone who checks it now sees that it is no longer valid.": "Każdy, kto je teraz sprawdzi, zobaczy, że nie jest już ważne.",
    "If you think this is a mistake, write to {email}.": "Jeśli to pomyłka, napisz na adres {email}.",
    "Open “{achievement}” in your e-Backpack": "Otwórz „{achievement}” w e-Plecaku",
    # expiry reminder
    "Your credential “{achievement}” is valid until {date}, {days} from today.": "Twoje poświadczenie „{achievement}” jest ważne do {date}, jeszcze {days}.",
    "To keep a valid credential, complete the recertification in the course “{course}” before then.": "Aby zachować ważne poświadczenie, przejdź przed tą datą recertyfikację w kursie „{course}”.",
    "After that date, anyone who checks it sees that it has expired.": "Po tej dacie każdy, kto je sprawdzi, zobaczy, że wygasło.",
    "Open the course “{course}” in Moodle": "Otwórz kurs „{course}” w Moodle",
    # facts
    "Achievement": "Osiągnięcie",
    "Date of issue": "Data wydania",
    "Valid until": "Ważne do",
    "Verification code": "Kod weryfikacyjny",
    "Revoked on": "Data unieważnienia",
    # footer
    "This message comes from the e-Backpack of {issuer}.": "Ta wiadomość pochodzi z e-Plecaka: {issuer}.",
    "Choose which messages you receive": "Wybierz, jakie wiadomości otrzymujesz",
    "Stop e-mails like this one": "Nie wysyłaj mi więcej takich e-maili",
}


def translate(text: str, lang: str, **values: object) -> str:
    return i18n.translate(POLISH, text, lang, **values)


def format_date(moment: datetime, lang: str) -> str:
    """As the backpack pages write dates: `15 marca 2026`, `15 March 2026` (UTC)."""
    return i18n.format_date(as_utc(moment).astimezone(UTC), supported_language(lang))


def days_phrase(days: int, lang: str) -> str:
    """`1 dzień`, `5 dni`, `1 day`, `5 days` (ebackpack/plurals.py)."""
    return quantity(days, DAYS, supported_language(lang))


# -------------------------------------------------------------------------------------------- content


@dataclass(frozen=True)
class Recipient:
    learner_id: int
    firstname: str
    lastname: str
    email: str
    lang: str

    @property
    def name(self) -> str:
        return f"{self.firstname} {self.lastname}".strip()


@dataclass(frozen=True)
class Site:
    issuer_name: str
    issuer_email: str
    public_url: str
    moodle_url: str

    def url(self, path: str) -> str:
        return f"{self.public_url.rstrip('/')}{path}"


@dataclass(frozen=True)
class Link:
    text: str
    url: str


@dataclass(frozen=True)
class Content:
    """One message in one language, before it is rendered for a channel."""

    kind: str
    lang: str
    subject: str
    heading: str
    greeting: str
    paragraphs: list[str]
    links: list[Link]
    facts: list[tuple[str, str]] = field(default_factory=list)
    alert: str | None = None  # stands out, after the first paragraph: the reason of a revocation
    facts_heading: str = ""
    footer: str = ""
    preferences: Link | None = None
    unsubscribe: Link | None = None


def credential_pages(notice: Notice, site: Site, achievement: str, lang: str) -> list[Link]:
    """Where the credential is in the e-Backpack (the learner logs in on the way)."""
    links, code = [], notice.verification_code
    if notice.certificate:
        text = translate(
            "Open the certificate “{achievement}” in your e-Backpack", lang, achievement=achievement
        )
        links.append(Link(text, site.url(f"/certificates/{code}")))
    if notice.badge:
        text = translate("Open the badge “{achievement}” in your e-Backpack", lang, achievement=achievement)
        links.append(Link(text, site.url(f"/badges/{code}")))
    return links


def compose(
    notice: Notice,
    recipient: Recipient,
    site: Site,
    *,
    achievement: str,
    course: str | None,
    unsubscribe_url: str | None = None,
    now: datetime | None = None,
) -> Content:
    """The message for this notice, in the recipient's language."""
    lang = supported_language(recipient.lang)

    def t(text: str, **values: object) -> str:
        return translate(text, lang, **values)

    course_name = course or achievement
    code = notice.verification_code
    verify = Link(
        t("Public verification page of “{achievement}”", achievement=achievement), site.url(f"/verify/{code}")
    )
    own = Link(
        t("Open “{achievement}” in your e-Backpack", achievement=achievement),
        site.url(f"/{'certificates' if notice.certificate or not notice.badge else 'badges'}/{code}"),
    )
    facts: list[tuple[str, str]] = [(t("Achievement"), achievement)]
    alert = None
    if notice.kind == "issued":
        what = (
            "{issuer} has awarded you a digital badge and a PDF certificate for completing the course "
            "“{course}”."
            if notice.badge and notice.certificate
            else "{issuer} has awarded you a digital badge for completing the course “{course}”."
            if notice.badge
            else "{issuer} has awarded you a PDF certificate for completing the course “{course}”."
        )
        subject = t(
            "Your new badge and certificate: {achievement}"
            if notice.badge and notice.certificate
            else "Your new badge: {achievement}"
            if notice.badge
            else "Your new certificate: {achievement}",
            achievement=achievement,
        )
        heading = t("Congratulations on “{achievement}”", achievement=achievement)
        paragraphs = [
            t(what, issuer=site.issuer_name, course=course_name),
            t("In your e-Backpack you can download, print and share your credentials."),
        ]
        links = credential_pages(notice, site, achievement, lang)
        if notice.certificate:
            links.append(
                Link(
                    t("Download the PDF certificate “{achievement}”", achievement=achievement),
                    site.url(f"/verify/{code}/certificate.pdf"),
                )
            )
        links.append(verify)
        facts.append((t("Date of issue"), format_date(notice.at, lang)))
        if notice.valid_until:
            facts.append((t("Valid until"), format_date(notice.valid_until, lang)))
    elif notice.kind == "revoked":
        subject = t("Your credential was revoked: {achievement}", achievement=achievement)
        heading = t("“{achievement}” has been revoked", achievement=achievement)
        paragraphs = [
            t(
                "The issuer, {issuer}, revoked your credential “{achievement}” on {date}.",
                issuer=site.issuer_name,
                achievement=achievement,
                date=format_date(notice.at, lang),
            ),
            t("Anyone who checks it now sees that it is no longer valid."),
            t("If you think this is a mistake, write to {email}.", email=site.issuer_email),
        ]
        alert = t("Reason: {reason}", reason=notice.reason or "")
        links = [own, verify]
        facts.append((t("Revoked on"), format_date(notice.at, lang)))
    else:
        assert notice.valid_until is not None, "an expiry reminder needs the expiry date"
        now = now or datetime.now(UTC)
        days = max(1, math.ceil((as_utc(notice.valid_until) - now).total_seconds() / 86400))
        date = format_date(notice.valid_until, lang)
        subject = t("Your credential expires on {date}: {achievement}", date=date, achievement=achievement)
        heading = t("Time to recertify: “{achievement}”", achievement=achievement)
        paragraphs = [
            t(
                "Your credential “{achievement}” is valid until {date}, {days} from today.",
                achievement=achievement,
                date=date,
                days=days_phrase(days, lang),
            ),
            t(
                "To keep a valid credential, complete the recertification in the course “{course}” "
                "before then.",
                course=course_name,
            ),
            t("After that date, anyone who checks it sees that it has expired."),
        ]
        links = [own]
        if notice.course_id is not None and site.moodle_url:
            links.insert(
                0,
                Link(
                    t("Open the course “{course}” in Moodle", course=course_name),
                    f"{site.moodle_url.rstrip('/')}/course/view.php?id={notice.course_id}",
                ),
            )
        links.append(verify)
        facts.append((t("Valid until"), date))
    facts.append((t("Verification code"), code))
    return Content(
        kind=notice.kind,
        lang=lang,
        subject=subject,
        heading=heading,
        greeting=t("Hello {name},", name=recipient.firstname or recipient.name),
        paragraphs=paragraphs,
        links=links,
        facts=facts,
        alert=alert,
        facts_heading=t("Details"),
        footer=t("This message comes from the e-Backpack of {issuer}.", issuer=site.issuer_name),
        preferences=Link(t("Choose which messages you receive"), site.url("/preferences")),
        unsubscribe=Link(t("Stop e-mails like this one"), unsubscribe_url) if unsubscribe_url else None,
    )


# ------------------------------------------------------------------------------------------ rendering


def _wrap(text: str, width: int = 72) -> str:
    """Plain-text paragraphs at a readable width; links are never broken."""
    return textwrap.fill(text, width=width, break_long_words=False, break_on_hyphens=False)


def _underline(text: str, char: str = "=") -> str:
    return char * len(text)


_env = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=StrictUndefined,
)
_env.filters["wrap"] = _wrap
_env.filters["underline"] = _underline


@dataclass(frozen=True)
class EmailBodies:
    text: str
    html: str


def email_bodies(content: Content) -> EmailBodies:
    return EmailBodies(
        text=_env.get_template("email.txt").render(c=content),
        html=_env.get_template("email.html").render(c=content),
    )


def moodle_html(content: Content) -> str:
    """A Moodle message (`textformat` 1 = HTML): a fragment, Moodle wraps it in its own page."""
    return _env.get_template("moodle.html").render(c=content).strip()
