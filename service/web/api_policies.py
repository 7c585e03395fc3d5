"""``GET /api/v1/policy-set``: what the /policies page shows, as JSON, plus each file's
documents with their lines.

The registry records only a set's version and file names. The documents and their lines come
from the set itself: this process's scheduler's set, or the policy directory read again, used
only when its version is the one in force (otherwise ``policies`` is null: the files changed
since and their lines would not be the ones in force).
"""

from __future__ import annotations

import re
from typing import Literal

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field

from service.policy.model import PolicySet
from service.web.api_models import ERRORS
from service.web.governing import policy_in_force
from service.web.policies import policy_state
from service.web.security import now_of, require

PLACE = re.compile(r"^(?P<file>.*):(?P<line>\d+):(?P<column>\d+): (?P<message>.*)$", re.S)


class PolicyDocumentOut(BaseModel):
    kind: Literal["AgentPolicy", "Defaults"]
    name: str | None = Field(description="the policy's name; null for the Defaults")
    line: int = Field(description="1-based line where the document starts")
    description: str | None


class PolicyFileOut(BaseModel):
    path: str
    policies: list[PolicyDocumentOut] | None = Field(
        description="the file's documents; null when the set in force cannot be read here")


class InForceOut(BaseModel):
    version: str
    loaded_at: str | None
    evaluated_at: str | None
    files: list[PolicyFileOut]


class ProblemOut(BaseModel):
    problem: str = Field(description="file:line:col: message, as reported")
    file: str | None
    line: int | None
    column: int | None
    message: str


class RefusalOut(BaseModel):
    problems: list[ProblemOut]


class PolicySetOut(BaseModel):
    in_force: InForceOut | None = Field(
        description="the valid set the latest evaluation used; null before the first")
    refused: RefusalOut | None = Field(
        description="the latest refused reload of this process's or a live scheduler; "
                    "null when none is refused")


def add_policy_api_routes(app: FastAPI) -> None:
    viewer = require("viewer")

    @app.get("/api/v1/policy-set", response_model=PolicySetOut, responses=ERRORS)
    def policy_set(request: Request) -> PolicySetOut:
        """The policy set in force (version, files with their documents and lines, loaded and
        last evaluated) and the problems of the latest refused reload."""
        viewer(request)
        scheduler = request.app.state.scheduler
        state = policy_state(engine=request.app.state.engine, scheduler=scheduler,
                             now=now_of(request))
        latest = state["in_force"]
        in_force = None
        if latest:
            loaded = _set_in_force(request, latest["version"])
            in_force = InForceOut(version=latest["version"], loaded_at=latest["loaded_at"],
                                  evaluated_at=latest["evaluated_at"],
                                  files=[_file(path, loaded) for path in latest["files"]])
        refused = state["refused"]
        return PolicySetOut(in_force=in_force, refused=RefusalOut(
            problems=[_problem(text) for text in refused]) if refused else None)


def _set_in_force(request: Request, version: str) -> PolicySet | None:
    """The set in force (``governing.policy_in_force``) when it is the one last evaluated."""
    loaded = policy_in_force(request.app.state).policy_set
    return loaded if loaded is not None and loaded.version == version else None


def _file(path: str, loaded: PolicySet | None) -> PolicyFileOut:
    if loaded is None:
        return PolicyFileOut(path=path, policies=None)
    documents = [PolicyDocumentOut(kind="AgentPolicy", name=policy.name, line=policy.ref.line,
                                   description=policy.description)
                 for policy in loaded.policies if policy.ref.file == path]
    defaults = loaded.defaults
    if defaults.ref is not None and defaults.ref.file == path:
        documents.append(PolicyDocumentOut(kind="Defaults", name=None, line=defaults.ref.line,
                                           description=defaults.description))
    return PolicyFileOut(path=path, policies=sorted(documents, key=lambda one: one.line))


def _problem(text: str) -> ProblemOut:
    match = PLACE.match(text)
    if match is None:
        return ProblemOut(problem=text, file=None, line=None, column=None, message=text)
    return ProblemOut(problem=text, file=match["file"], line=int(match["line"]),
                      column=int(match["column"]), message=match["message"])
