"""Polish for the importer's verdict reasons: the English template is the key (as in the backpack's
i18n), `{name}` marks a parameter (a URL, a date, an error the library gave) that both share.

`tests/unit/importer/test_verdicts.py` fails when a template in the importer has no Polish here, or when
the two disagree about their parameters.
"""

# ruff: noqa: E501 (the English reason templates are the keys)
from __future__ import annotations

# Reasons that pipeline.py writes as plain English (links, photos, PDFs, our own codes): translated by
# matching these templates (`record.polish_of`), parameters that are phrases here translated too.
MATCHED: dict[str, str] = {
    "{base}, and no verification link was found in it": "{base}, i nie znaleziono w nim linku weryfikacyjnego",
    "{base}; its issuer's verification page can confirm it: {pages}": "{base}; może je potwierdzić strona weryfikacji wystawcy: {pages}",
    "a photo or scan carries no signature": "zdjęcie lub skan nie zawiera podpisu",
    "a PDF certificate carries no signature we can check": "zaświadczenie PDF nie zawiera podpisu, który umiemy sprawdzić",
    "a web page, not a signed credential": "strona internetowa, a nie podpisane poświadczenie",
    "{what}, but we never issued code {code}": "{what}, ale nigdy nie wydaliśmy kodu {code}",
    "{what}: issued by us, found in our database": "{what}: wydane przez nas, znalezione w naszej bazie danych",
    "a photo or scan with our QR code": "zdjęcie lub skan z naszym kodem QR",
    "a PDF with our verification link": "PDF z naszym linkiem weryfikacyjnym",
    "a link to our verification page": "link do naszej strony weryfikacji",
    "a link to our hosted badge": "link do naszej udostępnianej odznaki",
    "revoked by us: {reason}": "unieważnione przez nas: {reason}",
    "no reason given": "nie podano powodu",
    "expired on {date}": "wygasło {date}",
}

POLISH: dict[str, str] = MATCHED | {
    # the key behind a signature (keys.py)
    "a did:key": "klucz did:key",
    "our own signing key": "nasz własny klucz podpisu",
    "DID document of {did}": "dokument DID {did}",
    "key document at {url}": "dokument klucza pod adresem {url}",
    "the key published at {url}": "klucz opublikowany pod adresem {url}",
    "issuer profile {issuer}": "profil wystawcy {issuer}",
    "the key embedded in the token's own header": "klucz zapisany w nagłówku samego tokenu",
    "the key written in the verification method's fragment (not confirmed at {url}: network fetches are off)": "klucz zapisany we fragmencie metody weryfikacji (niepotwierdzony pod adresem {url}: pobieranie z "
    "sieci jest wyłączone)",
    "the issuer's key at {url}": "klucz wystawcy pod adresem {url}",
    "the issuer's key at {url} could not be fetched: {error}": "nie udało się pobrać klucza wystawcy spod adresu {url}: {error}",
    "the issuer's key document at {url} is not JSON": "dokument klucza wystawcy pod adresem {url} nie jest JSON-em",
    "the DID document of {did} does not list {method}": "dokument DID {did} nie zawiera {method}",
    "the key document at {url} does not list {method}": "dokument klucza pod adresem {url} nie zawiera {method}",
    "unsupported verification method {method}": "nieobsługiwana metoda weryfikacji {method}",
    "key {key}... is not multibase base58btc": "klucz {key}... nie jest zapisany w multibase base58btc",
    "key is not valid base58": "klucz nie jest poprawnym base58",
    "key type is neither Ed25519 nor P-256": "typ klucza to ani Ed25519, ani P-256",
    "key is not a point on P-256": "klucz nie jest punktem krzywej P-256",
    "the issuer profile {issuer} (its public key)": "profil wystawcy {issuer} (jego klucz publiczny)",
    "the issuer profile {issuer} could not be read: {error}": "nie udało się odczytać profilu wystawcy {issuer}: {error}",
    "the token names no key (no kid, no jwk) and the issuer publishes none we can read": "token nie wskazuje klucza (brak kid i jwk), a wystawca nie publikuje klucza, który umiemy odczytać",
    "the proof ({suite}) needs an Ed25519 key, but its verification method is a {key} key": "dowód ({suite}) wymaga klucza Ed25519, a jego metoda weryfikacji to klucz {key}",
    "the verification method's key is malformed": "klucz metody weryfikacji jest uszkodzony",
    # tokens refused from their header
    "the token names no signature algorithm (alg), so it is not signed": "token nie podaje algorytmu podpisu (alg), więc nie jest podpisany",
    'the token is unsigned (alg "none"): anyone could have written it': 'token nie jest podpisany (alg "none"): mógł go napisać każdy',
    "the token uses {alg}, a shared-secret code and not a signature: anyone who has the issuer's public key "
    "could make it": "token używa {alg}, kodu ze wspólnym sekretem, a nie podpisu: mógłby go wytworzyć każdy, kto ma klucz "
    "publiczny wystawcy",
    "the token's algorithm {alg} is not a signature we accept ({accepted})": "algorytm tokenu {alg} nie jest akceptowanym przez nas podpisem ({accepted})",
    "the token carries no signature": "token nie zawiera podpisu",
    "the token's 'crit' header is not a list of parameter names": "nagłówek 'crit' tokenu nie jest listą nazw parametrów",
    "the token marks header parameters we do not implement as critical ({names}), so it must be refused "
    "(RFC 7515)": "token oznacza jako krytyczne parametry nagłówka, których nie obsługujemy ({names}), więc musi zostać "
    "odrzucony (RFC 7515)",
    "the token claims {alg}, which its key ({key}) cannot make: the algorithm does not match the key": "token deklaruje {alg}, którego jego klucz ({key}) nie może wytworzyć: algorytm nie pasuje do klucza",
    # signatures and who stands behind them
    "signature valid ({source}); our own credential": "podpis ważny ({source}); nasze własne poświadczenie",
    "signature valid with a key the issuer {issuer} publishes on its own origin ({source})": "podpis ważny, złożony kluczem, który wystawca {issuer} publikuje we własnej domenie ({source})",
    "signature valid ({source}); trusted issuer {issuer}": "podpis ważny ({source}); zaufany wystawca {issuer}",
    "{source}, which is not on the issuer's own https origin": "{source}, spoza własnej domeny https wystawcy",
    "signature valid with {where}; the issuer {issuer} is not on our list of trusted issuers (key {key})": "podpis ważny ({where}); wystawcy {issuer} nie ma na naszej liście zaufanych wystawców (klucz {key})",
    "signature valid with {source}": "podpis ważny ({source})",
    "signature valid with the key at {key}, which the issuer profile served at {issuer} lists as its own": "podpis ważny, złożony kluczem {key}, który profil wystawcy udostępniany pod adresem {issuer} "
    "wymienia jako własny",
    "signature valid with the key at {key}, but it is not shown to be the issuer's: {why}; the issuer is not "
    "on our list of trusted issuers": "podpis ważny, złożony kluczem {key}, ale nie wykazano, że należy on do wystawcy: {why}; wystawcy nie "
    "ma na naszej liście zaufanych wystawców",
    "the issuer profile {issuer} is not served over https": "profil wystawcy {issuer} nie jest udostępniany przez https",
    "the issuer profile {issuer} does not list the key (publicKey)": "profil wystawcy {issuer} nie wymienia tego klucza (publicKey)",
    "the issuer {issuer} has no profile URL": "wystawca {issuer} nie ma adresu profilu",
    "the profile served at {url} names another id ({other})": "profil udostępniany pod adresem {url} podaje inny identyfikator ({other})",
    "no issuer profile": "brak profilu wystawcy",
    "the signature does not match the document: it was changed after signing or signed with another key": "podpis nie pasuje do dokumentu: zmieniono go po podpisaniu albo podpisano innym kluczem",
    "the token's signature does not match: {error}": "podpis tokenu się nie zgadza: {error}",
    "the credential has no proof": "poświadczenie nie ma dowodu (proof)",
    "the credential has a proof type we cannot check": "poświadczenie ma dowód typu, którego nie umiemy sprawdzić",
    "the document cannot be canonicalized: {error}": "dokumentu nie da się skanonizować: {error}",
    "issued by us: found in our database": "wydane przez nas: znalezione w naszej bazie danych",
    "the assertion claims to be ours, but we never issued code {code}": "asercja podaje się za naszą, ale nigdy nie wydaliśmy kodu {code}",
    "the issuer profile's keys": "klucze z profilu wystawcy",
    "the assertion names no signing key (creator), and the issuer profile could not be read: {why}": "asercja nie wskazuje klucza podpisu (creator), a profilu wystawcy nie udało się odczytać: {why}",
    "the signature matches none of the {count} keys the issuer profile {issuer} declares": "podpis nie pasuje do żadnego z kluczy ({count}) deklarowanych w profilu wystawcy {issuer}",
    "the assertion names no signing key (creator), and the issuer profile {issuer} declares none we can read": "asercja nie wskazuje klucza podpisu (creator), a profil wystawcy {issuer} nie deklaruje klucza, "
    "który umiemy odczytać",
    "the key at {url}": "klucz pod adresem {url}",
    "the key at {url} could not be read: {error}": "nie udało się odczytać klucza spod adresu {url}: {error}",
    "not checked": "nie sprawdzono",
    "not JSON": "to nie jest JSON",
    "not a URL": "to nie jest adres URL",
    # hosted assertions
    "the assertion has no hosted URL to check": "asercja nie ma adresu, pod którym można ją sprawdzić",
    "the uploaded assertion differs from the one its issuer serves": "przesłana asercja różni się od tej, którą udostępnia jej wystawca",
    "the issuer {issuer} serves this assertion on its own origin at {url}": "wystawca {issuer} udostępnia tę asercję we własnej domenie pod adresem {url}",
    "the assertion is served at {url}; trusted issuer {issuer}": "asercja jest udostępniana pod adresem {url}; zaufany wystawca {issuer}",
    "the assertion is served at {url}, which is not its issuer's own https origin ({issuer}); the issuer is "
    "not on our list of trusted issuers": "asercja jest udostępniana pod adresem {url}, spoza własnej domeny https wystawcy ({issuer}); "
    "wystawcy nie ma na naszej liście zaufanych wystawców",
    "the issuer no longer serves it": "wystawca już jej nie udostępnia",
    "the issuer serves it as revoked": "wystawca udostępnia ją jako unieważnioną",
    "the issuer serves it as revoked at {url}": "wystawca udostępnia ją jako unieważnioną pod adresem {url}",
    "the issuer answers 410 Gone at {url}": "wystawca odpowiada 410 Gone pod adresem {url}",
    "{url}": "{url}",
    "{url} could not be fetched: {error}": "nie udało się pobrać {url}: {error}",
    "{url} does not serve JSON": "{url} nie zwraca JSON-a",
    "{url} does not serve a JSON object": "{url} nie zwraca obiektu JSON",
    # validity window, revocation, expiry
    "not valid yet: it is valid only from {start} ({field})": "jeszcze nieważne: ważne dopiero od {start} ({field})",
    "expired on {end} ({field})": "wygasło {end} ({field})",
    "revoked by its issuer: {reason}": "unieważnione przez wystawcę: {reason}",
    "the status list marks it revoked": "lista statusów oznacza je jako unieważnione",
    "status list {url} checked": "sprawdzono listę statusów {url}",
    "revocation list {url} checked": "sprawdzono listę unieważnień {url}",
    "listed in the revocation list {url}": "figuruje na liście unieważnień {url}",
    "status checked in our database": "status sprawdzony w naszej bazie danych",
    "revocation ({kind})": "unieważnienie ({kind})",
    "revocation could not be checked: {error}": "nie udało się sprawdzić unieważnienia: {error}",
    "revocation method {kind} is not supported": "metoda unieważniania {kind} nie jest obsługiwana",
    "the issuer's revocation list": "lista unieważnień wystawcy",
    "the issuer publishes no revocation list": "wystawca nie publikuje listy unieważnień",
    "the issuer's revocation list could not be checked: {why}": "nie udało się sprawdzić listy unieważnień wystawcy: {why}",
    "the issuer's revocation list {url} could not be checked: {why}": "nie udało się sprawdzić listy unieważnień wystawcy {url}: {why}",
    # Europass seals (europass.py): whole sentences
    "{first} {second}": "{first} {second}",
    "The {alg} signature matches the credential, and the seal certificate was valid at {when}.": "Podpis {alg} pasuje do poświadczenia, a certyfikat pieczęci był ważny w chwili: {when}.",
    "the signing time it states, {at} (sigT)": "podany w niej czas złożenia podpisu, {at} (sigT)",
    "the time of import ({now}; the seal states no signing time)": "czas importu ({now}; pieczęć nie podaje czasu złożenia podpisu)",
    "The file holds {count} signatures; only the first was checked.": "Plik zawiera {count} podpisy/podpisów; sprawdzono tylko pierwszy.",
    "Each x5c certificate is signed by the next, up to '{top}'.": "Każdy certyfikat x5c jest podpisany przez następny, aż do '{top}'.",
    "The x5c chain holds only the seal certificate (issued by '{issuer}').": "Łańcuch x5c zawiera tylko certyfikat pieczęci (wydany przez '{issuer}').",
    "Not checked, as that needs trust anchors and the network: the EU trust list (LOTL), the certificate's "
    "revocation (OCSP/CRL) and any revocation status list of the credential.": "Nie sprawdzono, bo wymaga to punktów zaufania i sieci: unijnej listy zaufanych podmiotów (LOTL), "
    "unieważnienia certyfikatu (OCSP/CRL) ani listy statusów poświadczenia.",
    "Issuer trusted: the seal certificate {fingerprint} is trusted.": "Zaufany wystawca: certyfikat pieczęci {fingerprint} jest zaufany.",
    "Issuer not known: the seal certificate '{subject}' ({fingerprint}) is not on our list of trusted seals; "
    "the credential names its issuer as '{issuer}'.": "Wystawca nieznany: certyfikatu pieczęci '{subject}' ({fingerprint}) nie ma na naszej liście zaufanych "
    "pieczęci; poświadczenie podaje jako wystawcę '{issuer}'.",
    "Expired on {date}; the seal itself is valid.": "Wygasło {date}; sama pieczęć jest ważna.",
    "Not valid yet: it is valid only from {start} ({field}).": "Jeszcze nieważne: ważne dopiero od {start} ({field}).",
    "No seal: the credential carries no JAdES signature, so nothing shows who issued it or that it is unchanged.": "Brak pieczęci: poświadczenie nie ma podpisu JAdES, więc nic nie wskazuje, kto je wydał ani że nie "
    "zostało zmienione.",
    "The seal names no certificate (no x5c in its protected header), so the key that made it is unknown.": "Pieczęć nie wskazuje certyfikatu (brak x5c w chronionym nagłówku), więc klucz, którym ją złożono, "
    "jest nieznany.",
    "An x5c certificate cannot be read: {error}.": "Nie da się odczytać certyfikatu x5c: {error}.",
    "The header's 'crit' is not a list of names.": "Pole 'crit' nagłówka nie jest listą nazw.",
    "The seal depends on header parameters this importer does not understand: {names}.": "Pieczęć zależy od parametrów nagłówka, których ten importer nie rozumie: {names}.",
    "The header's certificate thumbprint (x5t#S256) does not match the x5c certificate.": "Odcisk certyfikatu w nagłówku (x5t#S256) nie pasuje do certyfikatu x5c.",
    "The seal certificate's key type is not supported.": "Typ klucza certyfikatu pieczęci nie jest obsługiwany.",
    "The signature value is not base64url.": "Wartość podpisu nie jest zapisana w base64url.",
    "The seal claims {alg}, which the certificate's {key} key cannot make.": "Pieczęć deklaruje {alg}, którego klucz {key} certyfikatu nie może wytworzyć.",
    "'{alg}' is not a seal: nothing ties it to the certificate's key.": "'{alg}' to nie pieczęć: nic nie wiąże jej z kluczem certyfikatu.",
    "The seal algorithm '{alg}' is not supported.": "Algorytm pieczęci '{alg}' nie jest obsługiwany.",
    "The ECDSA signature has {length} bytes instead of {size}.": "Podpis ECDSA ma {length} bajtów zamiast {size}.",
    "The signature value is corrupt or was not made with the seal certificate's key.": "Wartość podpisu jest uszkodzona albo nie została wytworzona kluczem certyfikatu pieczęci.",
    "The signature is genuine but was made for other content: the credential or its header was changed after "
    "sealing.": "Podpis jest prawdziwy, ale złożono go pod inną treścią: poświadczenie lub jego nagłówek zmieniono po "
    "opieczętowaniu.",
    "The signature does not match: the credential was changed after sealing, or the signature is corrupt or "
    "was made with another key.": "Podpis się nie zgadza: poświadczenie zmieniono po opieczętowaniu albo podpis jest uszkodzony lub "
    "złożony innym kluczem.",
    "The signing time (sigT) {stated} is not a date.": "Czas złożenia podpisu (sigT) {stated} nie jest datą.",
    "The seal certificate was valid from {start} to {end}, not at {when}.": "Certyfikat pieczęci był ważny od {start} do {end}, a nie w chwili: {when}.",
    "The x5c chain is broken: '{child}' is not issued and signed by '{parent}'.": "Łańcuch x5c jest przerwany: '{child}' nie został wydany i podpisany przez '{parent}'.",
    # the network
    "{what}: network fetches are off (EBACKPACK_IMPORT_NETWORK), so this could not be checked": "{what}: pobieranie z sieci jest wyłączone (EBACKPACK_IMPORT_NETWORK), więc nie dało się tego sprawdzić",
}
