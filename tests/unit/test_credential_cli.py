"""`ebackpack credential export|revoke` and `ebackpack keys rotate|show` on a SQLite database.

One award (python-basics, learner 5722) is issued once through the issuer's service layer into a
template data folder; every test works on its own copy of that folder (EBACKPACK_DATA_DIR).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import select
from typer.testing import CliRunner, Result

from ebackpack.adapters.credential_store import status_of
from ebackpack.adapters.keystore import load_key_dir
from ebackpack.adapters.persistence.engine import make_engine, migrate, session_factory
from ebackpack.adapters.persistence.tables import AwardRow
from ebackpack.cli import app
from ebackpack.config import SAMPLE_DIR, Settings
from ebackpack.dev.sample_data import default_dataset
from ebackpack.domain.credentials import dataintegrity, vcjwt
from ebackpack.domain.credentials.baking import unbake_png
from ebackpack.domain.credentials.urls import PublicUrls
from ebackpack.domain.rules import load_rules
from services.gateway.profiles import store_profiles
from services.issuer.service import IssuerService
from tests.builders import completion

LEARNER, COURSE = 5722, 42  # python-basics
runner = CliRunner()


def clean_environment(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    """No EBACKPACK_* from the caller's shell and no `.env` file: only what the test sets."""
    for name in list(os.environ):
        if name.startswith("EBACKPACK_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(cwd)


@dataclass(frozen=True)
class Template:
    data_dir: Path
    credential_id: str
    code: str


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    base = tmp_path_factory.mktemp("cli-template")
    data_dir = base / "data"
    with pytest.MonkeyPatch.context() as monkeypatch:
        clean_environment(monkeypatch, base)
        settings = Settings(data_dir=data_dir)
        migrate(settings.db_url)
        engine = make_engine(settings.db_url)
        sessions = session_factory(engine)
        store_profiles(sessions, default_dataset().profiles)
        service = IssuerService(sessions, load_rules(SAMPLE_DIR / "rules.toml"), settings)
        service.handle(completion(LEARNER, COURSE, datetime(2026, 1, 12, 9, 30, tzinfo=UTC)))
        with sessions() as session:
            [award] = session.scalars(select(AwardRow)).all()
        engine.dispose()
    assert award.rule_id == "python-basics" and award.learner_id == LEARNER
    yield Template(data_dir, award.credential_id, award.verification_code)


@dataclass(frozen=True)
class Cli:
    data_dir: Path
    credential_id: str
    code: str

    def run(self, *args: str) -> Result:
        return runner.invoke(app, list(args))

    def award(self) -> AwardRow:
        engine = make_engine(Settings(data_dir=self.data_dir).db_url)
        try:
            with session_factory(engine)() as session:
                award = session.get(AwardRow, self.credential_id)
                assert award is not None
                return award
        finally:
            engine.dispose()


@pytest.fixture
def cli(template: Template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    data_dir = tmp_path / "data"
    shutil.copytree(template.data_dir, data_dir)
    clean_environment(monkeypatch, tmp_path)
    monkeypatch.setenv("EBACKPACK_DATA_DIR", str(data_dir))
    return Cli(data_dir, template.credential_id, template.code)


def one_line(text: str) -> str:
    """Rich wraps long stderr lines at the terminal width."""
    return " ".join(text.split())


def test_export_ob3_prints_the_signed_credential(cli: Cli) -> None:
    result = cli.run("credential", "export", cli.code, "--format", "ob3")
    assert result.exit_code == 0, result.output
    credential = json.loads(result.stdout)
    assert credential["id"] == f"urn:uuid:{cli.credential_id}"
    [proof] = credential["proof"]
    assert proof["cryptosuite"] == "eddsa-rdfc-2022" and proof["proofValue"].startswith("z")
    key = load_key_dir(cli.data_dir / "keys").current("Ed25519").private_key
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    expected = PublicUrls(Settings(data_dir=cli.data_dir).public_url).verification_method("ed25519-1")
    method = dataintegrity.verify(credential, lambda m: key.public_key() if m == expected else None)
    assert method.endswith("#ed25519-1")


def test_export_finds_the_credential_by_id_and_by_a_sloppily_typed_code(cli: Cli) -> None:
    by_id = cli.run("credential", "export", cli.credential_id)  # ob3 is the default
    sloppy = cli.run("credential", "export", cli.code.lower().replace("-", " "))
    assert by_id.exit_code == 0 and sloppy.exit_code == 0, (by_id.output, sloppy.output)
    assert by_id.stdout == sloppy.stdout
    assert json.loads(by_id.stdout)["proof"]


def test_export_ob3_jwt_prints_a_compact_token(cli: Cli) -> None:
    result = cli.run("credential", "export", cli.code, "--format", "ob3-jwt")
    assert result.exit_code == 0, result.output
    token = result.stdout.strip()
    assert len(token.split(".")) == 3 and all(token.split("."))
    ring = load_key_dir(cli.data_dir / "keys")
    claims = vcjwt.decode(token, dict(ring.current("ES256").public_jwk()))
    assert claims["jti"] == f"urn:uuid:{cli.credential_id}" and "exp" not in claims


def test_export_ob2_png_writes_a_baked_badge(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "badge.png"
    result = cli.run("credential", "export", cli.code, "--format", "ob2-png", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # the file, not stdout
    assert f"wrote {out} (image/png" in result.stderr  # the path whole, on one line, whatever its length
    baked = unbake_png(out.read_bytes(), "openbadges")
    assert baked is not None
    assertion = json.loads(baked)
    assert assertion["type"] == "Assertion"
    assert assertion["id"].endswith(f"/ob2/assertions/{cli.code}")
    assert assertion["recipient"]["hashed"] is True
    plain = cli.run("credential", "export", cli.code, "--format", "ob2")
    assert plain.exit_code == 0 and json.loads(plain.stdout) == assertion


def test_export_of_an_unknown_code_fails_clearly(cli: Cli) -> None:
    result = cli.run("credential", "export", "ZZZZ-ZZZZ-ZZZZ", "--format", "ob3")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "no credential with code or id 'ZZZZ-ZZZZ-ZZZZ'" in one_line(result.stderr)


def test_export_of_an_unknown_format_is_a_usage_error(cli: Cli) -> None:
    result = cli.run("credential", "export", cli.code, "--format", "pdf")
    assert result.exit_code == 2
    assert "pdf" in result.stderr


def test_revoke_with_a_reason(cli: Cli) -> None:
    reason = "Exam fraud confirmed by the course board"
    result = cli.run("credential", "revoke", cli.code, "--reason", reason)
    assert result.exit_code == 0, result.output
    message = one_line(result.stderr)
    assert f"{cli.code} is revoked" in message and reason in message
    award = cli.award()
    assert award.status == "revoked" and award.revocation_reason == reason
    assert status_of(award, datetime.now(UTC)) == "revoked"
    exported = cli.run("credential", "export", cli.code, "--format", "ob2")
    assert exported.exit_code == 0, exported.output
    assert json.loads(exported.stdout)["id"].endswith(cli.code)
    again = cli.run("credential", "revoke", cli.code, "--reason", "another reason")
    assert again.exit_code == 0
    assert cli.award().revocation_reason == reason  # the first reason stands


def test_revoke_needs_a_reason(cli: Cli) -> None:
    missing = cli.run("credential", "revoke", cli.code)
    assert missing.exit_code == 2
    assert "--reason" in missing.stderr
    blank = cli.run("credential", "revoke", cli.code, "--reason", "   ")
    assert blank.exit_code == 1
    assert "needs a reason" in one_line(blank.stderr)
    assert cli.award().status == "issued"


def test_revoke_of_an_unknown_code_fails_clearly(cli: Cli) -> None:
    result = cli.run("credential", "revoke", "ZZZZ-ZZZZ-ZZZZ", "--reason", "typo")
    assert result.exit_code == 1
    assert "no credential with code or id 'ZZZZ-ZZZZ-ZZZZ'" in one_line(result.stderr)


def kids_of(did_document: str) -> set[str]:
    return {m["id"].rsplit("#", 1)[1] for m in json.loads(did_document)["verificationMethod"]}


def test_keys_rotate_then_show(cli: Cli) -> None:
    before = cli.run("keys", "show")
    assert before.exit_code == 0, before.output
    assert kids_of(before.stdout) == {"ed25519-1", "p256-1"}

    rotated = cli.run("keys", "rotate")
    assert rotated.exit_code == 0, rotated.output
    assert "signing with ed25519-2, p256-2" in one_line(rotated.stderr)

    shown = cli.run("keys", "show")
    assert shown.exit_code == 0, shown.output
    document = json.loads(shown.stdout)
    assert document["id"] == "did:web:127.0.0.1%3A8000"
    assert kids_of(shown.stdout) == {"ed25519-1", "ed25519-2", "p256-1", "p256-2"}
    assert set(document["assertionMethod"]) == {m["id"] for m in document["verificationMethod"]}
    assert "PRIVATE" not in shown.stdout and '"d"' not in shown.stdout

    # credentials signed before the rotation still export, with their old key
    exported = cli.run("credential", "export", cli.code)
    assert json.loads(exported.stdout)["proof"][0]["verificationMethod"].endswith("#ed25519-1")


def test_keys_rotate_refuses_keys_from_the_environment(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    ring = load_key_dir(cli.data_dir / "keys")
    monkeypatch.setenv(
        "EBACKPACK_SIGNING_KEYS", json.dumps({k.kid: k.private_pem().decode() for k in ring.keys})
    )
    result = cli.run("keys", "rotate")
    assert result.exit_code == 1
    assert "EBACKPACK_SIGNING_KEYS" in one_line(result.stderr)
    assert sorted(p.name for p in (cli.data_dir / "keys").glob("*.pem")) == ["ed25519-1.pem", "p256-1.pem"]
    shown = cli.run("keys", "show")
    assert shown.exit_code == 0
    assert "PRIVATE" not in shown.output
