"""The ``postgres`` connector: login roles that agents use as agents, their catalog privileges
(directly, through role membership and PUBLIC) and role attributes as ``postgres:...`` grants,
their password's ``rolvaliduntil`` as credential expiry."""

from __future__ import annotations

from datetime import datetime

from connectors.base import BaseConnector
from connectors.models import Inventory, ItemError
from connectors.postgres.fetch import PostgresUnavailable, fetch_state
from connectors.postgres.options import PostgresOptions
from connectors.postgres.transform import map_state


class PostgresConnector(BaseConnector):
    kind = "postgres"
    Options = PostgresOptions
    options: PostgresOptions

    def collect(self, *, now: datetime) -> Inventory:
        try:
            state = fetch_state(options=self.options, env=self.env)
        except PostgresUnavailable as exc:
            where = self.options.host or f"${self.options.dsn_env}"
            return self.failed(now=now, errors=[ItemError(item=where, error=str(exc))])
        return self.finished(now=now, collected=map_state(
            state=state, connector=self.name, include_flags=self.options.include_flags))
