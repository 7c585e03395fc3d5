"""GitHub organization connector (kind ``github``)."""

from connectors.github.connector import GitHubConnector

__all__ = ["GitHubConnector"]
