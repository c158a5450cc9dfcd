"""The notifier's timings, from `EBACKPACK_NOTIFY_*` environment variables (the tests shorten them)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .delivery import RetrySchedule


class Tuning(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EBACKPACK_NOTIFY_", env_file=".env", extra="ignore")

    max_attempts: int = 8  # then a dead letter; with the delays below: about 2 hours of retrying
    retry_first_delay: float = 60.0  # seconds before the 2nd attempt; doubles each time
    retry_max_delay: float = 3600.0
    retry_interval: float = 5.0  # seconds between looks for due retries
    scan_interval: float = 3600.0  # seconds between expiry-reminder scans
    send_timeout: float = 30.0  # SMTP socket / Moodle HTTP timeout
    stale_sending: float = 300.0  # a `sending` row older than this: its worker died, send again
    pdf_wait: float = 600.0  # an issued certificate's message waits this long at most for its PDF
    pdf_poll: float = 10.0

    @model_validator(mode="after")
    def _stale_after_timeouts(self) -> Tuning:
        if self.stale_sending <= 2 * self.send_timeout:
            raise ValueError("stale_sending must be well above send_timeout: a slow send is not a crash")
        return self

    @property
    def schedule(self) -> RetrySchedule:
        return RetrySchedule(self.max_attempts, self.retry_first_delay, self.retry_max_delay)

    @property
    def stale(self) -> timedelta:
        return timedelta(seconds=self.stale_sending)
