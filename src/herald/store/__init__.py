"""Persistence: SQLAlchemy over SQLite by default, any SQLAlchemy URL (PostgreSQL) by setting."""
