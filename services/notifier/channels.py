"""The ways a message reaches a learner: e-mail over SMTP (stdlib smtplib/email) and Moodle's own messages
(web service `core_message_send_instant_messages`, httpx).

Each `send` calls `accepted()` the moment the other side has taken the message (SMTP: the server's 250
after DATA, before QUIT; Moodle: the web service's answer), so the caller records "sent" as close to the
acceptance as it can: a crash in between is the only way a message goes out twice (docs/notifier.md).
`PermanentFailure`: the other side refused this message for good (an SMTP 5xx for the recipient, Moodle
unable to message the user): retrying cannot help, it becomes a dead letter at once. Anything else raised
is worth another attempt later.
"""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr
from typing import Any, Protocol

import httpx

from ebackpack.config import Settings

from .domain import one_line

Accepted = Callable[[], None]
# Long header values (the unsubscribe URL) are never folded inside a word; 998 is RFC 5322's hard limit.
POLICY = SMTP_POLICY.clone(max_line_length=998)


class PermanentFailure(Exception):
    """The channel refused this message for good: retrying cannot help."""


def channel_unreachable(exc: BaseException) -> bool:
    """The channel is down for everyone (not reachable, not answering, out of service), as opposed to a
    failure of this one message: an outage, which no number of attempts may turn into a dead letter."""
    if isinstance(exc, smtplib.SMTPConnectError | smtplib.SMTPServerDisconnected):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code == 421  # "service not available, closing transmission channel"
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return bool(exc.recipients) and all(code == 421 for code, _msg in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPException):  # smtplib's errors are OSErrors too: refusals, not outages
        return False
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return isinstance(exc, OSError | httpx.TransportError)  # refused, reset, timed out, name not resolved


@dataclass(frozen=True)
class Email:
    to_name: str
    to_address: str
    subject: str
    text: str
    html: str
    lang: str
    message_id: str
    unsubscribe_url: str | None = None


def build_email(mail: Email, mail_from: str, now: datetime | None = None) -> EmailMessage:
    """multipart/alternative: the plain text first, the HTML last (the part clients prefer)."""
    message = EmailMessage(policy=POLICY)
    message["From"] = mail_from
    # Names and subjects come from Moodle data: never a line break in a header. The address is checked
    # before (recipient_address): an invalid one is a dead letter, and the policy refuses CR/LF anyway.
    message["To"] = formataddr((one_line(mail.to_name), mail.to_address))
    message["Subject"] = one_line(mail.subject)
    message["Date"] = format_datetime(now or datetime.now(UTC))
    message["Message-ID"] = mail.message_id
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies to this
    if mail.unsubscribe_url:
        # RFC 2369 and RFC 8058: mail clients show an "unsubscribe" button that POSTs
        # `List-Unsubscribe=One-Click` to the URL, which turns this kind of e-mail off at once.
        message["List-Unsubscribe"] = f"<{mail.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    # After the parts are made: making the alternative moves every Content-* header into the first part.
    message["Content-Language"] = mail.lang
    for part in message.iter_parts():
        part["Content-Language"] = mail.lang
    return message


class EmailSender(Protocol):
    def send(self, message: EmailMessage, accepted: Accepted) -> None: ...


class SmtpChannel:
    """One SMTP connection per message: simple, and nothing half-open is kept across failures."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout: float = 30.0,
    ) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.starttls, self.timeout = starttls, timeout

    @classmethod
    def from_settings(cls, settings: Settings, timeout: float) -> SmtpChannel:
        assert settings.smtp_host, "no SMTP server configured"
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(
            settings.smtp_host,
            settings.smtp_port,
            user=settings.smtp_user,
            password=password,
            starttls=settings.smtp_starttls,
            timeout=timeout,
        )

    def send(self, message: EmailMessage, accepted: Accepted) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            if self.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self.user:
                smtp.login(self.user, self.password or "")
            try:
                refused = smtp.send_message(message)
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _text in exc.recipients.values()]
                if codes and all(code >= 500 for code in codes):
                    reply = _reply(exc.recipients)
                    raise PermanentFailure(f"the SMTP server refused the recipient: {reply}") from exc
                raise
            except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
                if exc.smtp_code >= 500:
                    raise PermanentFailure(
                        f"the SMTP server refused the message: {exc.smtp_code} {_text(exc.smtp_error)}"
                    ) from exc
                raise
            if refused:  # one recipient per message: not reached, but never silently
                raise PermanentFailure(f"the SMTP server refused the recipient: {_reply(refused)}")
            accepted()  # before QUIT: the record follows the server's 250 as closely as possible


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _reply(recipients: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(f"{address}: {code} {_text(text)}" for address, (code, text) in recipients.items())


class MoodleSender(Protocol):
    def send(self, user_id: int, html: str, client_id: str, accepted: Accepted) -> None: ...


class MoodleChannel:
    """Moodle's notifications (the bell and the messaging drawer), through its REST web service.

    The token's user needs the capability moodle/site:sendmessage; the function is
    `core_message_send_instant_messages` (Moodle answers a list: `msgid` -1 with an `errormessage` means
    it could not message this user, e.g. they blocked messages from non-contacts)."""

    FUNCTION = "core_message_send_instant_messages"

    def __init__(
        self, moodle_url: str, token: str, timeout: float = 10.0, client: httpx.Client | None = None
    ) -> None:
        self.endpoint = f"{moodle_url.rstrip('/')}/webservice/rest/server.php"
        self.token = token
        self.client = client or httpx.Client(timeout=timeout)

    @classmethod
    def from_settings(cls, settings: Settings, timeout: float) -> MoodleChannel:
        assert settings.moodle_ws_token, "no Moodle web services token configured"
        return cls(settings.moodle_url, settings.moodle_ws_token.get_secret_value(), timeout)

    def send(self, user_id: int, html: str, client_id: str, accepted: Accepted) -> None:
        answer = self.client.post(
            self.endpoint,
            data={
                "wstoken": self.token,
                "wsfunction": self.FUNCTION,
                "moodlewsrestformat": "json",
                "messages[0][touserid]": str(user_id),
                "messages[0][text]": html,
                "messages[0][textformat]": "1",  # FORMAT_HTML
                "messages[0][clientmsgid]": client_id,
            },
        )
        answer.raise_for_status()
        body: Any = answer.json()
        if isinstance(body, dict) and "exception" in body:
            # invalidtoken, accessexception, ...: a configuration matter, worth retrying once it is fixed
            raise RuntimeError(f"Moodle {self.FUNCTION}: {body.get('errorcode')}: {body.get('message')}")
        result = body[0] if isinstance(body, list) and body else {}
        if not isinstance(result, dict) or "msgid" not in result:
            raise RuntimeError(f"Moodle {self.FUNCTION}: unexpected answer {str(body)[:200]}")
        if int(result["msgid"]) == -1:
            raise PermanentFailure(
                f"Moodle could not message user {user_id}: {result.get('errormessage') or 'no reason given'}"
            )
        accepted()

    def close(self) -> None:
        self.client.close()
