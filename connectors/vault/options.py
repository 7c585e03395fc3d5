"""Options of the ``vault`` connector (HashiCorp Vault and OpenBao speak the same API)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Identity = Literal["approle", "token_roles", "entities"]


class VaultOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://", description="Vault/OpenBao address")
    token_env: str | None = Field(None, description="NAME of the env variable holding a token")
    role_id_env: str | None = Field(None, description="NAME of the env variable with a role_id")
    secret_id_env: str | None = Field(None, description="NAME of the env variable with a secret_id")
    approle_login_mount: str = "approle"
    namespace: str | None = None
    ca_cert: str | None = Field(None, description="path of a CA bundle for TLS verification")
    verify: bool = True
    kv_mounts: list[str] | None = Field(
        None, description="KV v2 mounts or mount/prefix pairs to inventory; default: every KV v2 "
                          "mount the token can see")
    identities: list[Identity] = Field(default_factory=lambda: ["approle"])
    include_default_policy: bool = Field(
        False, description="turn the built-in `default` policy into grants too")
    inventory_tokens: bool = Field(True, description="list token accessors (needs sudo)")
    owner_key: str = Field("owner", description="role/entity/KV metadata key naming the owner")
    label_keys: list[str] = Field(default_factory=list,
                                  description="metadata keys copied to agent labels")
    agent_key: str = Field("agent", description="KV custom metadata key naming the agent")
    timeout: float = Field(10.0, gt=0, description="seconds per HTTP request")
    retries: int = Field(4, ge=0, le=10)
    max_in_flight: int = Field(16, ge=1, le=16)

    @model_validator(mode="after")
    def _one_auth_method(self) -> VaultOptions:
        approle = self.role_id_env is not None or self.secret_id_env is not None
        if self.token_env and approle:
            raise ValueError("give either token_env or role_id_env/secret_id_env, not both")
        if not self.token_env and not (self.role_id_env and self.secret_id_env):
            raise ValueError("give token_env, or both role_id_env and secret_id_env")
        return self
