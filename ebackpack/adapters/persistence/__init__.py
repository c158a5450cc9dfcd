"""SQL persistence shared by the services: tables, engine, Alembic migrations."""
