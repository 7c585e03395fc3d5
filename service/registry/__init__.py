"""The registry: Scopekeeper's database (docs/registry.md).

- ``db``: engines (SQLite/PostgreSQL), transactions, ``upgrade`` (Alembic migrations).
- ``tables``/``types``: the SQLModel tables and portable column types.
- ``apply``: one connector's inventory in one transaction (``rows``, ``bundles``, ``diff``,
  ``stored`` and ``writes`` are its parts).
- ``read``/``merge``: the engine's view, streamed; ``history``: who held what, when.
- ``queries``, ``acceptance``, ``policy_sets``: findings and policy sets (reconcile itself lives
  in ``service.findings.reconcile``).
"""
