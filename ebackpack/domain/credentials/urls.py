"""Stable public URLs of everything a credential points to, all under the issuer's origin."""

from __future__ import annotations

from dataclasses import dataclass

from .keys import did_web


@dataclass(frozen=True)
class PublicUrls:
    base: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", self.base.rstrip("/"))

    @property
    def did(self) -> str:
        return did_web(self.base)

    def verification_method(self, kid: str) -> str:
        return f"{self.did}#{kid}"

    def verify(self, code: str) -> str:
        return f"{self.base}/verify/{code}"

    # Open Badges 2.0, hosted verification
    @property
    def ob2_issuer(self) -> str:
        return f"{self.base}/ob2/issuer"

    @property
    def ob2_revocations(self) -> str:
        return f"{self.base}/ob2/revocations"

    def ob2_badge(self, rule_id: str) -> str:
        return f"{self.base}/ob2/badges/{rule_id}"

    def badge_image(self, rule_id: str) -> str:
        return f"{self.base}/ob2/badges/{rule_id}/image.png"

    def ob2_assertion(self, code: str) -> str:
        """By verification code, not credential id: codes cannot be derived from Moodle user ids."""
        return f"{self.base}/ob2/assertions/{code}"

    # Open Badges 3.0
    @staticmethod
    def ob3_credential(credential_id: str) -> str:
        """A URN, not a URL: the signed credential names its learner, so it is not published openly."""
        return f"urn:uuid:{credential_id}"

    def ob3_achievement(self, rule_id: str) -> str:
        return f"{self.base}/ob3/achievements/{rule_id}"

    def status_list(self, number: int | str) -> str:
        return f"{self.base}/status/{number}"
