"""The learner's notification choices: which messages (credential issued, revoked, expiring soon) reach
them on which channel (e-mail, Moodle message), and the one-click unsubscribe of the e-mails.

`/preferences`: a form of checkboxes, one per kind and channel this installation sends on (everything is
on until the learner turns it off). `/preferences/unsubscribe/<token>`: the target of every e-mail's
`List-Unsubscribe` header (RFC 8058 one-click: the mail client POSTs `List-Unsubscribe=One-Click`) and of
its "Stop e-mails like this one" link (a GET shows a confirmation button: link scanners and prefetching
never unsubscribe anyone). The token names the learner and the kind, signed with a key derived from the
installation's secret; it can only turn e-mails off, and needs no login.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response

from ebackpack.adapters.keystore import code_secret_for
from ebackpack.adapters.preferences import PreferenceStore, active_channels
from ebackpack.domain.notifications import CHANNELS, KINDS, read_unsubscribe_token

from .deps import DbSession
from .session import CsrfChecked, PageLearner
from .web import flash, render

router = APIRouter(include_in_schema=False)


@router.get("/preferences")
def preferences(request: Request, session: DbSession, user: PageLearner) -> Response:
    assert user.learner_id is not None
    return render(
        request,
        "preferences.html",
        mode="form",
        channels=active_channels(request.app.state.settings),
        choices=PreferenceStore(session).choices(user.learner_id),
    )


@router.post("/preferences", dependencies=[CsrfChecked])
def save_preferences(
    request: Request,
    session: DbSession,
    user: PageLearner,
    notify: Annotated[list[str] | None, Form()] = None,
) -> Response:
    """Every box of the form is a `kind:channel` value: the ticked ones come back, the rest are off."""
    assert user.learner_id is not None
    chosen = set(notify or [])
    unknown = chosen - {f"{k}:{c}" for k in KINDS for c in CHANNELS}
    if unknown:
        raise HTTPException(400, "no such kind of message or channel")
    store = PreferenceStore(session)
    for channel in active_channels(request.app.state.settings):
        for kind in KINDS:
            store.set(user.learner_id, kind, channel, f"{kind}:{channel}" in chosen)
    session.commit()
    flash(request, "Your choices were saved.")
    return RedirectResponse("/preferences", status_code=303)


def _token(request: Request, token: str) -> tuple[int, str]:
    try:
        return read_unsubscribe_token(code_secret_for(request.app.state.settings), token)
    except ValueError:
        raise HTTPException(404, "this unsubscribe link is not valid") from None


@router.get("/preferences/unsubscribe/{token}")
def unsubscribe_page(request: Request, token: str) -> Response:
    """Asks first: a GET never changes anything (mail scanners open every link)."""
    _learner, kind = _token(request, token)
    return render(request, "preferences.html", mode="unsubscribe", kind=kind, token=token, done=False)


@router.post("/preferences/unsubscribe/{token}")
async def unsubscribe(request: Request, session: DbSession, token: str) -> Response:
    """One click, no login, no CSRF token: the signed token is the authority, and it can only turn the
    e-mails of one kind off. A mail client's RFC 8058 POST gets a short plain answer, a person a page."""
    learner, kind = _token(request, token)
    PreferenceStore(session).set(learner, kind, "email", False)
    session.commit()
    form = await request.form()  # RFC 8058: urlencoded or multipart, `List-Unsubscribe=One-Click`
    if form.get("List-Unsubscribe") == "One-Click":
        return PlainTextResponse("unsubscribed\n")
    return render(request, "preferences.html", mode="unsubscribe", kind=kind, token=token, done=True)
