"""Polish and English for every page: the English text is the key, `POLISH` its translation.

The language is the visitor's choice (the switch on every page), remembered in the session and in a
year-long cookie; until they choose, the browser's Accept-Language decides, then Polish. The public
pages keep no session: their switch puts `?lang=` in the address instead (public_pages.py).
`tests/unit/test_backpack_i18n.py` fails when a text used in a template has no Polish translation.
"""

from __future__ import annotations

from datetime import datetime

from starlette.requests import Request

from ebackpack.domain import i18n
from ebackpack.domain.i18n import DEFAULT_LANGUAGE
from ebackpack.domain.i18n import LANGUAGES as LANGUAGES  # the pages' language switch

LANG_COOKIE = "ebackpack_lang"
LANGUAGE_NAMES = {"pl": "Polski", "en": "English"}

POLISH: dict[str, str] = {
    # layout
    "Skip to main content": "Przejdź do treści",
    "e-Backpack": "e-Plecak",
    "Main menu": "Menu główne",
    "Certificates": "Zaświadczenia",
    "Digital badges": "Odznaki cyfrowe",
    "External attestations": "Poświadczenia zewnętrzne",
    "Administration": "Administracja",
    "Language": "Język",
    "Change language": "Zmień język",
    "Log out": "Wyloguj",
    "Log in": "Zaloguj",
    "Signed in as {name}": "Zalogowano jako {name}",
    "via {via}": "przez {via}",
    "Your micro-credentials, badges and certificates in one place.": "Twoje mikropoświadczenia, odznaki i zaświadczenia w jednym miejscu.",
    # login
    "Log in to your e-Backpack": "Zaloguj się do e-Plecaka",
    "Log in with the platform account": "Zaloguj się kontem platformy",
    "Inside Moodle, open the e-Backpack from the course menu: you are logged in automatically.": "W Moodle otwórz e-Plecak z menu kursu: zostaniesz zalogowany automatycznie.",
    "Development login": "Logowanie deweloperskie",
    "For development and tests only: anyone can log in as anyone. It is off in production.": "Tylko do prac deweloperskich i testów: każdy może zalogować się jako ktokolwiek. "
    "W środowisku produkcyjnym jest wyłączone.",
    "Log in as": "Zaloguj jako",
    "Administrator": "Administrator",
    "No login method is configured.": "Nie skonfigurowano żadnej metody logowania.",
    # statuses
    "valid": "ważne",
    "revoked": "unieważnione",
    "expired": "wygasłe",
    "unknown": "nieznane",
    "Status": "Status",
    # certificates
    "Course": "Kurs",
    "Achievement": "Osiągnięcie",
    "Date of issue": "Data wydania",
    "Valid until": "Ważne do",
    "Details": "Szczegóły",
    "You have no certificates yet. They appear here when you complete a course that awards one.": "Nie masz jeszcze zaświadczeń. Pojawią się tutaj po ukończeniu kursu, który je przyznaje.",
    "Certificate": "Zaświadczenie",
    "Verification code": "Kod weryfikacyjny",
    "Verification page": "Strona weryfikacji",
    "QR code linking to the verification page": "Kod QR prowadzący do strony weryfikacji",
    "Download the PDF": "Pobierz PDF",
    "Print": "Drukuj",
    "The PDF is being prepared. Reload this page in a moment.": "PDF jest w przygotowaniu. Odśwież stronę za chwilę.",
    "Revoked on {date}. Reason: {reason}": "Unieważnione {date}. Powód: {reason}",
    "Expired on {date}.": "Wygasło {date}.",
    "SHA-256 of the PDF": "SHA-256 pliku PDF",
    "Learning outcomes": "Efekty uczenia się",
    # badges
    "You have no badges yet.": "Nie masz jeszcze odznak.",
    "Badge": "Odznaka",
    "Criteria": "Kryteria",
    "Issuer": "Wydawca",
    "Issued to": "Wydano dla",
    "Badge image: {name}": "Obraz odznaki: {name}",
    "Downloads": "Pobieranie",
    "Badge image with the credential inside (PNG)": "Obraz odznaki z poświadczeniem w środku (PNG)",
    "Badge image with the credential inside (SVG)": "Obraz odznaki z poświadczeniem w środku (SVG)",
    "Open Badges 3.0 credential (JSON)": "Poświadczenie Open Badges 3.0 (JSON)",
    "Open Badges 3.0 credential (JWT)": "Poświadczenie Open Badges 3.0 (JWT)",
    "Add to another backpack": "Dodaj do innego plecaka",
    "Paste this Open Badges 2.0 address into the other backpack's import form:": "Wklej ten adres Open Badges 2.0 w formularzu importu innego plecaka:",
    "Open Badges 2.0 assertion address": "Adres asercji Open Badges 2.0",
    "Add to LinkedIn profile": "Dodaj do profilu LinkedIn",
    "opens LinkedIn in a new window": "otwiera LinkedIn w nowym oknie",
    # sharing
    "Share": "Udostępnij",
    "Public links": "Linki publiczne",
    "Anyone with a public link sees this credential (your name, the achievement, the issuer and the dates) until the link expires or you withdraw it.": "Każdy, kto ma link publiczny, widzi to poświadczenie (imię i nazwisko, osiągnięcie, wydawcę i daty), "
    "dopóki link nie wygaśnie albo go nie wycofasz.",
    "Link valid for": "Link ważny przez",
    "{n} days": "{n} dni",
    "Create a public link": "Utwórz link publiczny",
    "Withdraw": "Wycofaj",
    "Withdrawn": "Wycofany",
    "Expires": "Wygasa",
    "Created": "Utworzony",
    "No public links.": "Brak linków publicznych.",
    "This link was withdrawn by its owner.": "Ten link został wycofany przez właściciela.",
    "This link has expired.": "Ten link wygasł.",
    "Shared credential": "Udostępnione poświadczenie",
    "Check it on the issuer's verification page": "Sprawdź na stronie weryfikacji wydawcy",
    # attestations
    "Certificates and badges you earned elsewhere: we check what can be checked and tell you what cannot.": "Zaświadczenia i odznaki zdobyte gdzie indziej: sprawdzamy, co da się sprawdzić, i mówimy, czego nie.",
    "Upload a file": "Prześlij plik",
    "File": "Plik",
    "Open Badges (PNG, SVG, JSON), Europass credential, PDF certificate, photo or scan (PNG, JPEG); at most {size}.": "Open Badges (PNG, SVG, JSON), poświadczenie Europass, zaświadczenie PDF, zdjęcie lub skan "
    "(PNG, JPEG); najwyżej {size}.",
    "Upload": "Prześlij",
    "Or add a link": "Albo dodaj link",
    "Link to a badge or a verification page": "Link do odznaki lub strony weryfikacji",
    "Add the link": "Dodaj link",
    "You have not added any attestations yet.": "Nie dodano jeszcze żadnych poświadczeń.",
    "Added": "Dodano",
    "Title": "Tytuł",
    "Format": "Format",
    "being checked": "w trakcie sprawdzania",
    "not imported": "nie zaimportowano",
    "verified": "zweryfikowane",
    "signature valid but issuer not known": "podpis poprawny, ale wydawca nieznany",
    "not verifiable": "nie do zweryfikowania",
    "invalid": "nieprawidłowe",
    "Why": "Dlaczego",
    "How it was checked": "Jak sprawdzono",
    "Recipient": "Odbiorca",
    "It names you.": "Wskazuje na Ciebie.",
    "It names someone else.": "Wskazuje na kogoś innego.",
    "It names nobody we could compare with you.": "Nie wskazuje nikogo, kogo dałoby się porównać z Tobą.",
    "Description": "Opis",
    "Workload": "Nakład pracy",
    "Links found": "Znalezione linki",
    "Original file": "Oryginalny plik",
    "Download the original": "Pobierz oryginał",
    "Check again": "Sprawdź ponownie",
    "Delete": "Usuń",
    "Delete this attestation and its file?": "Usunąć to poświadczenie i jego plik?",
    "The file was received and is being checked.": "Plik został przyjęty i jest sprawdzany.",
    "Deleted.": "Usunięto.",
    "A new check was requested.": "Zlecono ponowne sprawdzenie.",
    "Not imported: {reason}": "Nie zaimportowano: {reason}",
    "Submitted link": "Przesłany link",
    # verification page
    "Credential verification": "Weryfikacja poświadczenia",
    "Valid: this credential was issued by {issuer}.": "Ważne: to poświadczenie wydał(a) {issuer}.",
    "Revoked: {issuer} withdrew this credential on {date}. Reason: {reason}": "Unieważnione: {issuer} wycofał(a) to poświadczenie {date}. Powód: {reason}",
    "Expired: this credential, issued by {issuer}, was valid until {date}.": "Wygasłe: to poświadczenie, wydane przez {issuer}, było ważne do {date}.",
    "Unknown: no credential has the code {code}.": "Nieznane: żadne poświadczenie nie ma kodu {code}.",
    "Check the code printed on the certificate and try again.": "Sprawdź kod wydrukowany na zaświadczeniu i spróbuj ponownie.",
    "Issued on": "Data wydania",
    "(erased at the learner's request)": "(usunięte na prośbę osoby uczącej się)",
    "Certificate PDF": "Zaświadczenie PDF",
    "version {n} (current), rendered {date}": "wersja {n} (bieżąca), wygenerowana {date}",
    "download": "pobierz",
    "Earlier version {n} (rendered {date}), still authentic": "Wcześniejsza wersja {n} (wygenerowana {date}), nadal autentyczna",
    "Compare the SHA-256 of a copy you were given with these to check it is unaltered.": "Porównaj SHA-256 otrzymanej kopii z tymi wartościami, aby sprawdzić, że nie została zmieniona.",
    "This result as JSON": "Ten wynik jako JSON",
    # admin
    "Courses": "Kursy",
    "Credentials": "Poświadczenia",
    "Learner": "Osoba ucząca się",
    "Revoke": "Unieważnij",
    "Reason for revoking {code}": "Powód unieważnienia {code}",
    "Revoke with this reason": "Unieważnij z tym powodem",
    "Re-render this course's certificates": "Wygeneruj ponownie zaświadczenia tego kursu",
    "Download all certificates (ZIP)": "Pobierz wszystkie zaświadczenia (ZIP)",
    "{code} was revoked.": "{code} unieważniono.",
    "Revocation of {code} requested; it takes effect within seconds.": "Zlecono unieważnienie {code}; zacznie obowiązywać w ciągu kilku sekund.",
    "Unavailable for a moment: try again.": "Chwilowo niedostępne: spróbuj ponownie.",
    "{n} certificates will be rendered again.": "{n} zaświadczeń zostanie wygenerowanych ponownie.",
    "A reason is required: it is shown to everyone who checks the credential.": "Powód jest wymagany: widzi go każdy, kto sprawdza poświadczenie.",
    "Awards": "Przyznane",
    "Revoked": "Unieważnione",
    # notifications
    "Notifications": "Powiadomienia",
    "Choose which messages you receive about your credentials, and how.": "Wybierz, jakie wiadomości o swoich poświadczeniach chcesz otrzymywać i w jaki sposób.",
    "When a badge or certificate is issued to me": "Gdy otrzymam odznakę lub zaświadczenie",
    "When one of my credentials is revoked, with the reason": "Gdy któreś z moich poświadczeń zostanie unieważnione (z podaniem powodu)",
    "Some weeks before one of my credentials expires (recertification reminder)": "Kilka tygodni przed wygaśnięciem któregoś z moich poświadczeń (przypomnienie o recertyfikacji)",
    "E-mail": "E-mail",
    "Moodle message": "Wiadomość w Moodle",
    "Save my choices": "Zapisz wybór",
    "Your choices were saved.": "Zapisano wybór.",
    "This site sends no notifications at the moment.": "Ta witryna nie wysyła obecnie powiadomień.",
    "Stop e-mails": "Rezygnacja z e-maili",
    "new credentials": "nowych poświadczeniach",
    "revoked credentials": "unieważnionych poświadczeniach",
    "credentials about to expire": "wygasających poświadczeniach",
    "Stop the e-mails about {what}?": "Zrezygnować z e-maili o {what}?",
    "Stop these e-mails": "Rezygnuję z tych e-maili",
    "Done: you will no longer receive e-mails about {what}.": "Gotowe: nie będziesz już otrzymywać e-maili o {what}.",
    "You can turn them on again in your notification settings at any time.": "W każdej chwili możesz je ponownie włączyć w ustawieniach powiadomień.",
    "Open your notification settings": "Otwórz ustawienia powiadomień",
    # errors
    "Page not found": "Nie znaleziono strony",
    "Not allowed": "Brak dostępu",
    "Something went wrong": "Coś poszło nie tak",
    "Back to your e-Backpack": "Wróć do e-Plecaka",
    "Too many requests: try again in a minute.": "Zbyt wiele zapytań: spróbuj ponownie za minutę.",
    # wallets (OpenID4VCI)
    "Add to a wallet": "Dodaj do portfela",
    "A digital wallet app that supports OpenID4VCI (for example the EU Digital Identity Wallet) can keep this credential, bound to a key of its own. Revoking the credential here revokes the copy in the wallet too.": "Aplikacja portfela cyfrowego obsługująca OpenID4VCI (na przykład Europejski Portfel Tożsamości Cyfrowej) może przechowywać to poświadczenie, powiązane z własnym kluczem portfela. Unieważnienie poświadczenia tutaj unieważnia też jego kopię w portfelu.",
    "A revoked or expired credential cannot be added to a wallet.": "Unieważnionego ani wygasłego poświadczenia nie można dodać do portfela.",
    "Open your wallet app and scan this QR code, or, on this device, use the link below. The offer works once and expires in {n} minutes.": "Otwórz aplikację portfela i zeskanuj ten kod QR albo na tym urządzeniu użyj poniższego linku. Oferta działa jeden raz i wygasa za {n} min.",
    "QR code with the credential offer for your wallet; the same offer is in the link and the text below": "Kod QR z ofertą poświadczenia dla portfela; ta sama oferta jest w linku i w tekście poniżej",
    "Open in a wallet on this device": "Otwórz w portfelu na tym urządzeniu",
    "Your wallet will ask for this code:": "Portfel poprosi o ten kod:",
    "The offer as text (for wallets that take a pasted offer)": "Oferta jako tekst (dla portfeli, które przyjmują wklejoną ofertę)",
    "Credential offer": "Oferta poświadczenia",
    "Offered formats: Open Badges 3.0 with a Data Integrity proof (ldp_vc) and as a JWT (jwt_vc_json); your wallet takes the one it supports.": "Oferowane formaty: Open Badges 3.0 z dowodem Data Integrity (ldp_vc) oraz jako JWT (jwt_vc_json); portfel przyjmie ten, który obsługuje.",
    "Back to the credential": "Wróć do poświadczenia",
    "Added to wallets (the wallet's key, the format, the date):": "Dodano do portfeli (klucz portfela, format, data):",
    "Open Badge": "Odznaka Open Badge",
    "A digital badge issued by {issuer}": "Odznaka cyfrowa wydana przez {issuer}",
    "Issued by": "Wystawca",
    "Wallet": "Portfel",
    "Is this PDF genuine?": "Czy ten PDF jest autentyczny?",
    "Choose (or drop here) the PDF you were given: we say whether it is a certificate we issued, unaltered. The file is checked and not kept.": "Wybierz (lub upuść tutaj) otrzymany plik PDF: sprawdzimy, czy to wydane przez nas zaświadczenie, niezmienione. Plik jest sprawdzany i nie jest przechowywany.",
    "Certificate PDF to check": "Plik PDF zaświadczenia do sprawdzenia",
    "Check the PDF": "Sprawdź PDF",
    "Genuine: this is certificate {code} as we issued it, unaltered (version {n} of {total}, rendered {date}).": "Autentyczny: to zaświadczenie {code} w postaci, w jakiej je wydaliśmy, niezmienione (wersja {n} z {total}, wygenerowana {date}).",
    "A newer version of this certificate exists; this one stays authentic.": "Istnieje nowsza wersja tego zaświadczenia; ta pozostaje autentyczna.",
    "Not as we issued it: this file differs from certificate {code}.": "Niezgodny z wydanym: ten plik różni się od zaświadczenia {code}.",
    "Not a certificate of ours.": "To nie jest nasze zaświadczenie.",
    "Reason: {reason}": "Powód: {reason}",
    "What we hold for certificate {code}": "Co mamy zapisane dla zaświadczenia {code}",
    "Credential attached to the file": "Poświadczenie dołączone do pliku",
    "signature and status verified": "podpis i status zweryfikowane",
    "does not verify: {errors}": "nie przechodzi weryfikacji: {errors}",
    "The verification page of {code}": "Strona weryfikacji {code}",
    "Everything in your e-Backpack": "Wszystko w Twoim e-Plecaku",
    "One ZIP file with every certificate PDF (all versions), every credential in each of its forms, the attestations you uploaded with their verification results, and an index in JSON.": "Jeden plik ZIP ze wszystkimi zaświadczeniami PDF (we wszystkich wersjach), każdym poświadczeniem we wszystkich jego postaciach, przesłanymi przez Ciebie poświadczeniami zewnętrznymi z wynikami weryfikacji oraz spisem w formacie JSON.",
    "Download everything (ZIP)": "Pobierz wszystko (ZIP)",
    "Wallet offer": "Oferta do portfela",
    "Wallet offer for {code}": "Oferta do portfela dla {code}",
}


def language_of(request: Request) -> str:
    """The `lang` query parameter (the language switch of the public pages, which keep no session),
    else the visitor's choice (session, cookie), else Accept-Language, else Polish."""
    asked = request.query_params.get("lang") if request.scope.get("query_string") else None
    for chosen in (
        asked,
        request.session.get("lang"),
        request.cookies.get(LANG_COOKIE),
    ):
        if chosen in LANGUAGES:
            return str(chosen)
    for part in request.headers.get("accept-language", "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def translate(text: str, language: str, **values: object) -> str:
    return i18n.translate(POLISH, text, language, **values)


def format_date(moment: datetime | None, language: str) -> str:
    return "" if moment is None else i18n.format_date(moment, language)
