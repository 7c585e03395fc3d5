"""One exception root for bad input and operational trouble, mapped to exit codes or HTTP
statuses only at the edge (CLI, web). Every message is one sentence naming the place."""

from __future__ import annotations


class ScopekeeperError(Exception):
    """Root of every error the CLI and web layer turn into a clear message."""


class InputError(ScopekeeperError):
    """Input the user gave is invalid (policy file, snapshot, config, request): exit code 2."""


class PolicyError(InputError):
    """A policy set failed validation; ``problems`` holds every ``file:line:col: message``."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        first = problems[0] if problems else "policy set is invalid"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(f"{first}{more}")


class SnapshotError(InputError):
    """An inventory snapshot file is unreadable or does not follow the format."""


class ConfigError(InputError):
    """The configuration file or environment is invalid."""


class UnknownConnectorError(ConfigError):
    """A configured connector kind is not registered; the message lists the valid kinds."""


class RegistryError(ScopekeeperError):
    """The registry database could not be reached or updated."""
