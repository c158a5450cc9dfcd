"""The one configuration of e-Backpack: environment variables `EBACKPACK_*` (or a `.env` file).

Backends are chosen by URL, so the same code runs on the embedded stack (Tansu, SeaweedFS, SQLite)
and in production (Apache Kafka, any S3, PostgreSQL).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_DIR = Path(__file__).resolve().parent
SAMPLE_DIR = PACKAGE_DIR / "sample"


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
    s3_public_endpoint: str | None = Field(None, description=(
        "S3 origin that browsers can reach, for pre-signed download links (default: s3_endpoint)."))
    download_link_seconds: int = Field(300, description="How long a pre-signed PDF download link works.")

    public_url: str = Field("http://127.0.0.1:8000", description="Origin of the verification pages.")
    http_host: str = "127.0.0.1"
    http_port: int = 8000

    rules_file: Path = Field(SAMPLE_DIR / "rules.toml", description="Award rules (TOML).")
    site_id: str = Field("moodle.example.org", description="The Moodle site the events come from.")
    moodle_url: str = Field("https://moodle.example.org", description="Base URL of that Moodle site.")

    signing_keys: SecretStr | None = Field(None, description=(
        "Production: the signing keys as a JSON object key id -> PKCS#8 PEM (`ed25519-N`, `p256-N`); "
        "without it, keys are generated on first start in `signing_keys_dir`."))
    code_secret: SecretStr | None = Field(None, description=(
        "Production: the secret that keys the printed verification codes (any long random string); "
        "without it, one is generated on first start in `signing_keys_dir`. Never change it once used."))
    signing_keys_dir: Path | None = Field(None, description="Default: `keys/` in the data directory.")
    credential_formats: str = Field("ob3-di,ob3-jwt", description=(
        "Signed OB 3.0 proof formats stored per award (`ob3-di`, `ob3-jwt`); empty = signing off."))
    expiry_scan_interval: float = Field(30.0, description="Seconds between scans for expired credentials.")

    issuer_group: str = Field("issuer", description=(
        "Consumer group of the issuer; a new name replays `moodle.events` from offset 0 "
        "(awards are idempotent: nothing is issued twice)."))

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
    def kafka_url(self) -> str:
        """Faust wants `kafka://host:port;host:port`."""
        return "kafka://" + ";".join(self.kafka_bootstrap.split(","))

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def verify_url(self, code: str) -> str:
        return f"{self.public_url.rstrip('/')}/verify/{code}"


def get_settings() -> Settings:
    return Settings()
