"""MCP client configs connector (kind ``mcp``)."""

from connectors.mcp.connector import McpConnector

__all__ = ["McpConnector"]
