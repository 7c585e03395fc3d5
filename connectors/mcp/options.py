"""Options of the ``mcp`` connector (see docs/connectors/mcp.md)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AgentPaths(BaseModel):
    """A named agent made of the config files its globs match."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$",
                      description="agent name; the agent id is <connector>/<name>")
    paths: list[str] = Field(min_length=1, description="glob patterns of its config files")
    owner: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class McpOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(
        default_factory=list,
        description="glob patterns (~ and ** allowed); each matching file is its own agent")
    agents: list[AgentPaths] = Field(
        default_factory=list, description="named agents; a file they match is theirs")
    base_dir: str | None = Field(
        None, description="derived agent names are file paths relative to this folder; "
                          "default: the parent of the folder all `paths` globs start from")
    owner: str | None = Field(None, description="owner of the agents derived from `paths`")
    labels: dict[str, str] = Field(default_factory=dict,
                                   description="labels of every agent (an agent's own win)")
    git_age: bool = Field(True, description="date secrets by git history when possible")
    git_timeout: float = Field(120.0, gt=0, description="seconds per git call")
    max_file_bytes: int = Field(1_048_576, ge=1024, description="larger files are item errors")

    @model_validator(mode="after")
    def _something_to_read(self) -> McpOptions:
        if not self.paths and not self.agents:
            raise ValueError("give `paths` or `agents` (glob patterns of MCP config files)")
        names = [agent.name for agent in self.agents]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"agent names must be unique: {', '.join(duplicates)}")
        return self
