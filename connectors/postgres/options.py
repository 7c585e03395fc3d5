"""Options of the ``postgres`` connector (docs/connectors/postgres.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PostgresOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dsn_env: str | None = Field(
        None, description="NAME of the env variable holding a libpq DSN or postgresql:// URL")
    host: str | None = None
    port: int = Field(5432, ge=1, le=65535)
    user: str | None = None
    dbname: str = Field("postgres", description="database of the first connection")
    password_env: str | None = Field(None, description="NAME of the env variable with a password")
    sslmode: str | None = Field(None, pattern=r"^(disable|allow|prefer|require|verify-ca|"
                                              r"verify-full)$")
    databases: list[str] | None = Field(
        None, min_length=1, description="databases to read; default: every database the "
                                        "connecting role may connect to, except templates")
    role_pattern: str | None = Field(None, min_length=1,
                                     description="glob on the role name (fnmatch)")
    role_comment_label: str | None = Field(
        None, min_length=1, description="text in the role's comment (or key:value of a JSON "
                                        "comment) marking an agent")
    include_flags: bool = Field(True, description="superuser/createrole/... and predefined "
                                                  "role memberships as grants")
    connect_timeout: int = Field(10, ge=1, le=600)
    statement_timeout: int = Field(30, ge=1, le=3600, description="seconds per query")

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> PostgresOptions:
        if self.dsn_env and (self.host or self.user or self.password_env):
            raise ValueError("give either dsn_env or host/user/password_env, not both")
        if not self.dsn_env and not self.host:
            raise ValueError("give dsn_env, or host (with user and optionally password_env)")
        return self
