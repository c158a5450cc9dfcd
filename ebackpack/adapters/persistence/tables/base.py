"""The declarative base every table module registers with: one metadata, one schema, one migration
history."""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
