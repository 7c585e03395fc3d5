"""HashiCorp Vault / OpenBao connector (kind ``vault``)."""

from connectors.vault.connector import VaultConnector

__all__ = ["VaultConnector"]
