"""PostgreSQL login-role connector (kind ``postgres``)."""

from connectors.postgres.connector import PostgresConnector

__all__ = ["PostgresConnector"]
