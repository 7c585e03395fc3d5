"""Options of the ``github`` connector (docs/connectors/github.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Listing = Literal["pats", "installations"]


class GitHubOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    org: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]*)$",
                     description="the organization's login")
    api_url: str = Field("https://api.github.com", pattern=r"^https?://",
                         description="REST API root; GitHub Enterprise Server: "
                                     "https://HOST/api/v3")
    token_env: str | None = Field(None, description="NAME of the env variable holding a token")
    app_id: int | str | None = Field(None, description="GitHub App id (or client id)")
    installation_id: int | None = Field(None, description="the App's installation on the org")
    private_key_env: str | None = Field(
        None, description="NAME of the env variable holding the App's PEM private key")
    include: list[Listing] = Field(default_factory=lambda: ["pats", "installations"],
                                   min_length=1, description="what to list")
    max_wait: float = Field(60.0, ge=0, le=3600,
                            description="seconds one sync may spend waiting on rate limits")
    timeout: float = Field(10.0, gt=0, description="seconds per HTTP request")
    retries: int = Field(2, ge=0, le=10, description="retries on 5xx and connection errors")
    per_page: int = Field(100, ge=1, le=100)
    ca_cert: str | None = Field(None, description="path of a CA bundle (GitHub Enterprise)")
    verify: bool = True

    @model_validator(mode="after")
    def _one_auth_method(self) -> GitHubOptions:
        app_fields = (self.app_id, self.installation_id, self.private_key_env)
        app = any(value is not None for value in app_fields)
        if self.token_env and app:
            raise ValueError("give either token_env or app_id/installation_id/private_key_env, "
                             "not both")
        if not self.token_env and not all(value is not None for value in app_fields):
            raise ValueError("give token_env, or all of app_id, installation_id and "
                             "private_key_env")
        return self

    @property
    def uses_app(self) -> bool:
        return self.token_env is None
