"""The ``mcp`` connector: MCP servers declared in AI clients' config files, as agents' grants.

One run: find the files (:mod:`~connectors.mcp.discover`), read and parse each
(:mod:`~connectors.mcp.reader`), find servers and secrets (pure, :mod:`~connectors.mcp.transform`
with :mod:`~connectors.mcp.shapes` and :mod:`~connectors.mcp.secrets`), date the lines holding
literal secrets (:mod:`~connectors.mcp.gitage`, one git call per repository), map to models.

Status: ``ok`` when every file parsed; ``partial`` with ``path:line[:column]`` item errors and
coverage of the agents whose files all parsed; ``failed`` when no glob matched a file or the
fingerprint key is missing (checked first: any file may hold a literal to fingerprint).
"""

from __future__ import annotations

import logging
import os
from datetime import datetime

from connectors.base import BaseConnector, ConnectorError
from connectors.fingerprint import fingerprint_key
from connectors.mcp.discover import AgentTarget, discover
from connectors.mcp.gitage import GitAges
from connectors.mcp.options import McpOptions
from connectors.mcp.reader import ConfigFileError, read_config
from connectors.mcp.transform import ScannedFile, age_requests, map_inventory, scan_file
from connectors.models import Inventory, ItemError

log = logging.getLogger(__name__)


class McpConnector(BaseConnector):
    kind = "mcp"
    Options = McpOptions
    options: McpOptions

    git_calls = 0
    """git processes the last ``collect`` ran (for benchmarks)."""

    def collect(self, *, now: datetime) -> Inventory:
        try:
            key = fingerprint_key(self.env)
        except ConnectorError as exc:
            return self._failed(now, "fingerprint key", str(exc))
        found = discover(options=self.options, connector=self.name, cwd=os.getcwd())
        if not found.files:
            globs = [*self.options.paths, *(p for a in self.options.agents for p in a.paths)]
            return self._failed(now, ", ".join(globs), "no file matches the configured paths")
        files = [self._scan(path, target) for path, target in found.files]
        ages = GitAges(use_git=self.options.git_age, timeout=self.options.git_timeout)
        line_ages = ages.ages(age_requests(files))
        self.git_calls = ages.calls
        mapped = map_inventory(connector=self.name, files=files, ages=line_ages, key=key)
        mapped.errors[:0] = found.errors
        return self.finished(now=now, collected=mapped)

    def _scan(self, path: str, target: AgentTarget) -> ScannedFile:
        """Read, parse and scan one file; the parsed document is dropped right after."""
        try:
            return scan_file(read_config(path, max_bytes=self.options.max_file_bytes), target)
        except ConfigFileError as exc:
            return ScannedFile(path=path, agent=target,
                               errors=[ItemError(item=exc.place, error=exc.reason)])
        except Exception as exc:  # a bug on one odd file must not end the whole sync
            # Only the type: an exception's message may quote the file, and so a secret.
            log.error("mcp connector: %s while scanning %s", type(exc).__name__, path)
            return ScannedFile(path=path, agent=target, errors=[ItemError(
                item=path, error=f"internal error while reading the file "
                                 f"({type(exc).__name__}); please report it")])

    def _failed(self, now: datetime, item: str, reason: str) -> Inventory:
        return self.failed(now=now, errors=[ItemError(item=item, error=reason)])
