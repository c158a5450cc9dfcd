"""The one configuration of e-Backpack: environment variables `EBACKPACK_*` (or a `.env` file).

Backends are chosen by URL, so the same code runs on the embedded stack (Tansu, SeaweedFS, SQLite)
and in production (Apache Kafka, any S3, PostgreSQL).
"""

from __future__ import annotations

from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ebackpack.secret_policy import GENERATE_COMMAND, MIN_BYTES, MIN_BYTES_PROVIDER_PASSWORD, weakness

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_DIR = PACKAGE_DIR / "dev" / "sample"  # the embedded default; production sets its own rules file


class InsecureSettings(ValueError):
    """Outside the embedded stack, a secret is missing, a placeholder, short or reused (one line each)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EBACKPACK_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path(".ebackpack"), description="Local state: database, S3 data, logs, PDFs.")
    embedded: bool = Field(True, description="Start the embedded broker and S3 server in `demo`.")

    kafka_bootstrap: str = "127.0.0.1:9092"
    topic_prefix: str = Field("", description="Prepended to every topic name (isolates test runs).")
    database_url: str | None = Field(None, description="Default: SQLite file in the data directory.")

    s3_endpoint: str = "http://127.0.0.1:8333"
    s3_bucket: str = "ebackpack"
    s3_access_key: str = "ebackpack"
    s3_secret_key: str = "ebackpack-secret"
    s3_region: str = "us-east-1"
    s3_public_endpoint: str | None = Field(
        None,
        description=(
            "S3 origin that browsers can reach, for pre-signed download links (default: s3_endpoint)."
        ),
    )
    download_link_seconds: int = Field(300, description="How long a pre-signed PDF download link works.")

    public_url: str = Field("http://127.0.0.1:8000", description="Origin of the verification pages.")
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    http_header_timeout: float = Field(
        10.0,
        description=(
            "Web servers (`serve`, `gateway webhook`): seconds a connection may take to send a request's "
            "line and headers (also each next request on a kept-alive connection); then it is closed."
        ),
    )
    http_max_connections: int = Field(
        1000,
        description=(
            "Web servers: connections at once; a request beyond gets 503 (uvicorn's limit_concurrency)."
        ),
    )
    trusted_proxies: str = Field(
        "",
        description=(
            "Comma-separated addresses or networks of reverse proxies whose X-Forwarded-For / -Proto the web "
            "servers believe (the rate limit keys on the client address). Empty: none, the peer is the "
            "client."
        ),
    )
    api_tokens_not_before: datetime | None = Field(
        None,
        description=(
            "Learner API tokens (`ebackpack learner-token`) issued before this time (ISO 8601, e.g. "
            "2026-12-07T10:00:00Z) are refused: how tokens are revoked (they are not stored anywhere)."
        ),
    )

    rules_file: Path = Field(SAMPLE_DIR / "rules.toml", description="Award rules (TOML).")
    site_id: str = Field("moodle.example.org", description="The Moodle site the events come from.")
    moodle_url: str = Field("https://moodle.example.org", description="Base URL of that Moodle site.")

    signing_keys: SecretStr | None = Field(
        None,
        description=(
            "Production: the signing keys as a JSON object key id -> PKCS#8 PEM (`ed25519-N`, `p256-N`); "
            "without it, keys are generated on first start in `signing_keys_dir`."
        ),
    )
    code_secret: SecretStr | None = Field(
        None,
        description=(
            "Production: the secret that keys the printed verification codes (any long random string); "
            "without it, one is generated on first start in `signing_keys_dir`. Never change it once used."
        ),
    )
    signing_keys_dir: Path | None = Field(None, description="Default: `keys/` in the data directory.")
    credential_formats: str = Field(
        "ob3-di,ob3-jwt",
        description=(
            "Signed OB 3.0 proof formats stored per award (`ob3-di`, `ob3-jwt`); empty = signing off."
        ),
    )
    expiry_scan_interval: float = Field(30.0, description="Seconds between scans for expired credentials.")

    gateway_secret: SecretStr | None = Field(
        None,
        description=(
            "Shared secret of the Moodle webhook: HMAC-SHA256 over `<timestamp>.<body>` (the local_ebackpack "
            "plugin's setting of the same value). Unset: the webhook refuses every request."
        ),
    )
    vcapi_issue_token: SecretStr | None = Field(
        None,
        description=(
            "Bearer token of the VC-API's POST /credentials/issue, which signs whatever credential it is "
            "given with the issuer's key (for the W3C test suites and trusted machine clients; "
            "docs/wallets.md). Unset: the endpoint does not exist."
        ),
    )
    gateway_replay_seconds: int = Field(
        300, description="Webhook: how old (or how far in the future) a signed timestamp may be."
    )
    gateway_max_pending: int = Field(
        64,
        description="Webhook: requests waiting for the broker at once; "
        "more get 503 with Retry-After (backpressure, nothing dropped).",
    )
    moodle_db_url: str | None = Field(
        None,
        description=(
            "The Moodle database, read-only user (postgresql+psycopg://… or mysql+pymysql://…), for the "
            "log-store poller and profiles."
        ),
    )
    moodle_db_prefix: str = Field("mdl_", description="Moodle's table prefix ($CFG->prefix).")
    moodle_ws_token: SecretStr | None = Field(
        None,
        description=(
            "Moodle web services token (core_user_get_users_by_field, core_course_get_courses_by_field) for "
            "profiles when there is no database access; the URL is `moodle_url`."
        ),
    )
    poll_interval: float = Field(5.0, description="Log-store poller: seconds between polls.")
    poll_rescan_seconds: int = Field(
        120,
        description=(
            "Log-store poller: rows whose ids are below the newest seen id but that commit later (Moodle "
            "writes log rows in buffers per request) are found by re-reading this many seconds back."
        ),
    )
    metrics_port: int = Field(
        0,
        description=(
            "Workers: serve Prometheus metrics on this port (0 = off; give each worker process its own). The "
            "web apps serve /metrics on their own port."
        ),
    )
    smtp_host: str | None = Field(None, description="Notifier: SMTP server; unset = no e-mail.")
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = Field(False, description="Notifier: STARTTLS before logging in.")
    mail_from: str = Field("e-Backpack <no-reply@backpack.example.org>", description="Notifier: From.")
    notify_moodle_messages: bool = Field(
        True,
        description=(
            "Notifier: also send Moodle messages (core_message_send_instant_messages) when a web-services "
            "token is configured (EBACKPACK_MOODLE_WS_TOKEN)."
        ),
    )
    notify_group: str = Field("notifier", description="Notifier: its consumer group.")
    notify_backfill: bool = Field(
        False,
        description=(
            'Notifier: also send the "new credential" message (e-mail, Moodle message) for credentials '
            "awarded from the backfill lane (`origin: backfill`: history brought by `ebackpack gateway "
            "backfill` or the import). Off: those are recorded as skipped, so a backfill of years of "
            "completions does not flood learners. Revocations and expiry reminders are sent either way."
        ),
    )
    expiry_reminder_days: int = Field(
        30,
        description=(
            "Notifier: days before expiry the recertification reminder goes out (a rule's "
            "`reminder_days` overrides it)."
        ),
    )
    dev_login: bool | None = Field(
        None,
        description=(
            "Offer the development login (pick any learner, or admin, without a password). Default: on in "
            "the embedded stack (EBACKPACK_EMBEDDED), off otherwise. Never in production."
        ),
    )
    admin_emails: str = Field(
        "",
        description=(
            "Comma-separated e-mail addresses that get the admin role when they log in through OpenID "
            "Connect or LTI (LTI administrators of the platform get it too)."
        ),
    )
    oidc_issuer: str | None = Field(
        None,
        description=(
            "OpenID Connect issuer of the platform's identity provider (discovery at "
            "<issuer>/.well-known/openid-configuration). Unset: no OpenID Connect login."
        ),
    )
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    lti_issuer: str | None = Field(
        None, description=("LTI 1.3: the platform's issuer (Moodle: its wwwroot). Unset: no LTI launch.")
    )
    lti_client_id: str | None = Field(None, description="LTI 1.3: the client id Moodle gave the tool.")
    lti_auth_url: str | None = Field(
        None,
        description="LTI 1.3: the platform's authorization endpoint (Moodle: <wwwroot>/mod/lti/auth.php).",
    )
    lti_jwks_url: str | None = Field(
        None, description="LTI 1.3: the platform's public keys (Moodle: <wwwroot>/mod/lti/certs.php)."
    )
    lti_deployment_ids: str = Field("", description="LTI 1.3: comma-separated deployment ids accepted.")
    verify_rate_limit: str = Field(
        "120/minute",
        description=(
            "Requests per client address to the public verification pages (a `limits` rate string)."
        ),
    )
    verify_cache_seconds: int = Field(
        60,
        ge=0,
        le=3600,
        description=(
            "The bound within which a change of a credential (revocation, expiry, new certificate version, "
            "erasure) shows on its public verification page `/verify/{code}`: each process keeps an answer "
            "at most this long after reading it, and tells browsers and shared caches to keep it no longer "
            "(Cache-Control max-age counts down to the same moment). 0: no caching, every request reads "
            "the database (`Cache-Control: no-cache`)."
        ),
    )
    import_network: bool = Field(
        False,
        description=(
            "Importer: fetch hosted assertions, issuer keys and status lists over the network. Off by "
            "default (the embedded stack is offline); such checks then say they could not be made."
        ),
    )
    import_allow_private: bool = Field(
        False,
        description=(
            "Importer: allow fetches to loopback and private addresses (tests; never in production)."
        ),
    )
    import_fetch_timeout: float = Field(5.0, description="Importer: seconds a network fetch may take.")
    import_fetch_max_bytes: int = Field(1_048_576, description="Importer: largest response body fetched.")
    import_workers: int = Field(
        0,
        description=(
            "Importer: child processes that import uploads side by side (0: one per CPU, at least 2). Each "
            "learner has at most one file in work at a time; learners take turns."
        ),
    )
    import_file_seconds: float = Field(
        8.0,
        description=(
            "Importer: time budget of one file (wall clock and CPU); its process is killed at the deadline "
            "and the upload is rejected with that reason."
        ),
    )
    import_file_memory_mb: int = Field(1024, description="Importer: memory budget of one import process.")
    import_max_upload_bytes: int = Field(10_485_760, description="Largest attestation upload accepted.")
    import_trusted_issuers: str = Field(
        "",
        description=(
            "Importer: comma-separated issuer ids (URLs, DIDs, seal certificate subjects) whose valid "
            "signatures count as `verified`. Our own credentials always do."
        ),
    )
    import_reverify_interval: float = Field(
        86_400.0,
        description=(
            "Importer: seconds between re-verifications of imported attestations (revocation at the source)."
        ),
    )
    issuer_group: str = Field(
        "issuer",
        description=(
            "Consumer group of the issuer; a new name replays `moodle.events` from offset 0 "
            "(awards are idempotent: nothing is issued twice)."
        ),
    )

    backfill_render_backlog: int = Field(
        50,
        ge=0,
        le=1_000_000,
        description=(
            "Issuer: a batch of the backfill lane (`moodle.events.backfill`) waits while the renderer has "
            "more than this many of the backfill's render requests (`certificates.render.backfill`) not "
            "yet done, so the backfill's awards do not run far ahead of its PDFs and leave the CPU to the "
            "renderer. Live requests never wait for these: the renderer takes the backfill's only while "
            "no live one waits. 0: no wait (no renderer, or it keeps up)."
        ),
    )

    # Faust group join on the embedded broker waits half the session timeout: keep it short.
    broker_session_timeout: float = 6.0
    broker_heartbeat_interval: float = 0.5
    broker_rebalance_timeout: float = 6.0
    commit_interval: float = 1.0

    @cached_property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'ebackpack.db').resolve()}"

    @property
    def key_dir(self) -> Path:
        return self.signing_keys_dir or self.data_dir / "keys"

    @property
    def formats(self) -> list[str]:
        return [f.strip() for f in self.credential_formats.split(",") if f.strip()]

    @property
    def dev_login_enabled(self) -> bool:
        return self.embedded if self.dev_login is None else self.dev_login

    @property
    def admins(self) -> frozenset[str]:
        return frozenset(e.strip().lower() for e in self.admin_emails.split(",") if e.strip())

    @property
    def trusted_issuers(self) -> frozenset[str]:
        return frozenset(i.strip() for i in self.import_trusted_issuers.split(",") if i.strip())

    @property
    def kafka_url(self) -> str:
        """Faust wants `kafka://host:port;host:port`."""
        return "kafka://" + ";".join(self.kafka_bootstrap.split(","))

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def verify_url(self, code: str) -> str:
        return f"{self.public_url.rstrip('/')}/verify/{code}"

    def production_secret_problems(self) -> list[str]:
        """Outside the embedded stack: one line per secret that must change (empty: all usable)."""
        if self.embedded:
            return []
        problems = []
        if self.code_secret is None:
            problems.append(
                "EBACKPACK_CODE_SECRET is not set: outside the embedded stack it must be set explicitly (it "
                "keys verification codes, session cookies, API tokens and unsubscribe links). Generate one "
                f"with `{GENERATE_COMMAND}`; an installation that already issued credentials with a "
                f"generated secret sets it to the content of {self.key_dir / 'code-secret'}"
            )
        for secret in self._secrets():
            reason = weakness(secret.value, secret.minimum)
            if reason is not None:
                problems.append(f"{secret.name} {reason}: {secret.remedy}")
        code = self.code_secret.get_secret_value() if self.code_secret else None
        problems += [
            f"EBACKPACK_CODE_SECRET is the same as {s.name}: whoever knows that one could sign "
            "sessions and verification codes"
            for s in self._secrets()
            if code and s.name != "EBACKPACK_CODE_SECRET" and s.value == code
        ]
        return problems

    def _secrets(self) -> list[_Secret]:
        """Every secret that is set (the S3 one always is: its default is published); ours are checked
        when empty too (an empty HMAC key is no key)."""
        ours, issued = f"generate one with `{GENERATE_COMMAND}`", "use the one its issuer generated"
        secrets = [_Secret("EBACKPACK_S3_SECRET_KEY", self.s3_secret_key, MIN_BYTES, ours)]
        for name, secret, minimum, remedy in (
            ("EBACKPACK_CODE_SECRET", self.code_secret, MIN_BYTES, ours),
            (
                "EBACKPACK_GATEWAY_SECRET",
                self.gateway_secret,
                MIN_BYTES,
                f"{ours}, and set the same in the Moodle plugin",
            ),
            ("EBACKPACK_SMTP_PASSWORD", self.smtp_password, MIN_BYTES_PROVIDER_PASSWORD, issued),
            ("EBACKPACK_OIDC_CLIENT_SECRET", self.oidc_client_secret, MIN_BYTES, issued),
            ("EBACKPACK_VCAPI_ISSUE_TOKEN", self.vcapi_issue_token, MIN_BYTES, ours),
            ("EBACKPACK_MOODLE_WS_TOKEN", self.moodle_ws_token, MIN_BYTES, issued),
        ):
            # Empty counts as unset for the issued ones (.env.example leaves the optional ones empty).
            if secret is not None and (remedy != issued or secret.get_secret_value()):
                secrets.append(_Secret(name, secret.get_secret_value(), minimum, remedy))
        for name, url in (
            ("EBACKPACK_DATABASE_URL", self.database_url),
            ("EBACKPACK_MOODLE_DB_URL", self.moodle_db_url),
        ):
            password = _url_password(url) if url else None
            if password is not None:
                secrets.append(
                    _Secret(
                        f"the password in {name}",
                        password,
                        MIN_BYTES,
                        f"{ours} (URL-safe) for the database user",
                    )
                )
        return secrets

    def check_production_secrets(self) -> None:
        """Raises InsecureSettings naming every variable that must change (nothing in the embedded stack)."""
        if problems := self.production_secret_problems():
            raise InsecureSettings("\n".join(f"- {p}" for p in problems))


class _Secret(NamedTuple):
    name: str  # the variable, as the operator sets it
    value: str
    minimum: int  # bytes
    remedy: str


def _url_password(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password
    except (ArgumentError, ValueError):
        return None  # not a URL at all: the database connection says so


def get_settings() -> Settings:
    """The settings of a process that is starting (every CLI command, every worker and web app factory):
    outside the embedded stack it refuses to start with a secret anyone could know."""
    settings = Settings()
    try:
        settings.check_production_secrets()
    except InsecureSettings as exc:
        raise SystemExit(
            f"e-Backpack refuses to start outside the embedded stack (EBACKPACK_EMBEDDED="
            f"false) with these secrets:\n{exc}"
        ) from None
    return settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The same configuration, handed to a child process as `EBACKPACK_*` variables."""
    env = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, Path):
            value = value.resolve()
        if isinstance(value, SecretStr):
            value = value.get_secret_value()  # the child needs the keys themselves, not their mask
        env[f"EBACKPACK_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env
