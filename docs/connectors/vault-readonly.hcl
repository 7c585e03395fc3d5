# Read-only ACL policy for Scopekeeper's `vault` connector (HashiCorp Vault and OpenBao).
# Exactly what the connector reads, and no secret value: KV access is to metadata only.
#   bao policy write scopekeeper-readonly docs/connectors/vault-readonly.hcl

# Validate its own token (token_env auth).
path "auth/token/lookup-self" { capabilities = ["read"] }

# Which auth methods and secrets engines exist (AppRole mounts, KV v2 mounts).
path "sys/auth" { capabilities = ["read"] }
path "sys/mounts" { capabilities = ["read"] }

# The ACL policies that roles name, turned into grants.
path "sys/policies/acl/*" { capabilities = ["read"] }

# AppRole roles on any mount, their secret-id accessors and accessor lookups (a POST).
path "auth/+/role/" { capabilities = ["list"] }
path "auth/+/role/+" { capabilities = ["read"] }
path "auth/+/role/+/secret-id" { capabilities = ["list"] }
path "auth/+/role/+/secret-id-accessor/lookup" { capabilities = ["update"] }

# Token accessors: listing needs sudo; lookup-accessor is a POST (update).
path "auth/token/accessors" { capabilities = ["list", "sudo"] }
path "auth/token/lookup-accessor" { capabilities = ["update"] }

# Optional identities (`identities = ["token_roles", "entities"]`).
path "auth/token/roles" { capabilities = ["list"] }
path "auth/token/roles/*" { capabilities = ["read"] }
path "identity/entity/id" { capabilities = ["list"] }
path "identity/entity/id/*" { capabilities = ["read"] }

# KV v2 metadata (never data/): created and updated times, versions, custom metadata.
path "+/metadata" { capabilities = ["list"] }
path "+/metadata/*" { capabilities = ["list", "read"] }
