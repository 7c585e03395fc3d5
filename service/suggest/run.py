"""``suggest``: find the agent, propose its policy's allow list, show the edit, maybe write it.

The agents come from a snapshot file or from the registry, walked twice (once to find the
agent and its policy, once to gather every agent that policy governs), so a registry is
streamed and never held whole. ``--write`` edits the policy file in place only after the whole
policy set, with the edit applied, still loads; a new policy (for an unmanaged agent) goes to a
new file and never overwrites one.
"""

from __future__ import annotations

import difflib
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from service.errors import InputError, PolicyError
from service.files import write_atomically
from service.output.report import rfc3339
from service.policy.engine import span
from service.policy.loader import load_policy_set, policy_files
from service.policy.model import PolicySet
from service.suggest.propose import Proposal, propose
from service.suggest.rewrite import new_policy_text, policy_name_for, rewrite_allow
from service.view import AgentView

AgentSource = Callable[[], Iterable[AgentView]]
"""Returns the inventory's agents afresh each time it is called."""


class AgentNotFoundError(InputError):
    """The inventory holds no agent with the given id."""


@dataclass
class Suggestion:
    proposal: Proposal
    file: Path
    before: str
    """The file's text now ('' for a new policy file)."""
    after: str
    written: bool = False

    def diff(self) -> str:
        return "".join(difflib.unified_diff(
            self.before.splitlines(keepends=True), self.after.splitlines(keepends=True),
            fromfile=str(self.file) if self.before else "/dev/null",
            tofile=f"{self.file} (proposed)"))


def suggest_policy(*, agent_id: str, agents: AgentSource, policy_set: PolicySet,
                   policies_dir: Path, now: datetime, unused_after: timedelta | None = None,
                   write: bool = False) -> Suggestion:
    target = next((agent for agent in agents() if agent.id == agent_id), None)
    if target is None:
        raise AgentNotFoundError(f"--agent: no agent with id {agent_id!r} in the inventory")
    policy = policy_set.compiled.select(target).policy
    governed = ([agent for agent in agents() if policy_set.compiled.select(agent).policy
                 is policy] if policy is not None else [target])
    proposal = propose(agent=target, agents=governed, policy_set=policy_set, now=now,
                       unused_after=unused_after)
    if policy is not None:
        file = Path(policy.ref.file)
        before = file.read_text(encoding="utf-8")
        after = (rewrite_allow(before, display=str(file), policy=policy.name,
                               allow=proposal.allow_after) if proposal.changed else before)
    else:
        name = policy_name_for(target.name)
        file = policies_dir / f"{name}.yaml"
        before = ""
        after = new_policy_text(
            name=name, agent_name=target.name, owner=target.owner, allow=proposal.allow_after,
            note=f"Proposed by `scopekeeper suggest` on {rfc3339(now)} from the observed "
                 f"grants of {target.id}.")
    suggestion = Suggestion(proposal=proposal, file=file, before=before, after=after)
    if write and after != before:
        _write(suggestion, policies_dir)
    return suggestion


def _write(suggestion: Suggestion, policies_dir: Path) -> None:
    """Write the edit, after checking the policy set still loads with it applied."""
    if not suggestion.before and suggestion.file.exists():
        raise InputError(f"{suggestion.file}: a file of this name exists; the proposed policy "
                         "for the unmanaged agent is printed above, add it by hand")
    with tempfile.TemporaryDirectory(prefix="scopekeeper-suggest-") as folder:
        trial = Path(folder) / "policies"
        trial.mkdir()
        for path in policy_files(policies_dir):  # the files a policy set is loaded from
            shutil.copyfile(path, trial / path.name)
        (trial / suggestion.file.name).write_text(suggestion.after, encoding="utf-8")
        try:
            load_policy_set(trial)
        except PolicyError as exc:
            raise PolicyError([f"the edited policy set would be invalid, nothing was written: "
                               f"{problem.replace(str(trial), str(policies_dir))}"
                               for problem in exc.problems]) from None
    write_atomically(suggestion.file, suggestion.after)
    suggestion.written = True


def suggestion_text(suggestion: Suggestion) -> str:
    """The proposal for people: where it comes from, each scope's fate, and the file diff."""
    proposal = suggestion.proposal
    policy = proposal.policy
    lines = [(f"Agent {proposal.agent} is governed by policy {policy.name} "
              f"({policy.ref.file}:{policy.ref.line}), which governs "
              f"{len(proposal.governed)} agent{'s' if len(proposal.governed) != 1 else ''} "
              "in the inventory; the proposal keeps what any of them uses."
              if policy is not None else
              f"Agent {proposal.agent} is not governed by any policy; a new policy is "
              "proposed."),
             f"Grants unused for more than {span(proposal.unused_after)} (as of "
             f"{rfc3339(proposal.now)}) are dropped; an unknown last use is kept.", ""]
    width = max((len(d.scope) for d in proposal.decisions), default=0)
    lines += [f"  {d.action.replace('_', ' '):9} {d.scope.ljust(width)}  {d.reason}"
              for d in proposal.decisions]
    if not proposal.decisions:
        lines.append("  (the governed agents hold no grants)")
    lines.append("")
    if suggestion.after == suggestion.before:
        lines.append("The policy already allows exactly what is used: nothing to change.")
    else:
        lines.append(suggestion.diff().rstrip("\n"))
        lines.append("")
        lines.append(f"wrote {suggestion.file}" if suggestion.written else
                     "Run again with --write to apply this edit.")
    return "\n".join(lines) + "\n"


def suggestion_document(suggestion: Suggestion) -> dict[str, Any]:
    """``suggest --format json`` (docs/pr-workflow.md)."""
    proposal = suggestion.proposal
    policy = proposal.policy
    return {
        "agent": proposal.agent,
        "policy": None if policy is None else {"name": policy.name, "file": policy.ref.file,
                                               "line": policy.ref.line},
        "governed_agents": list(proposal.governed),
        "unused_after": span(proposal.unused_after), "evaluated_at": rfc3339(proposal.now),
        "decisions": [{"scope": d.scope, "integration": d.integration, "action": d.action,
                       "reason": d.reason, "agents": list(d.agents),
                       "last_used_at": rfc3339(d.last_used_at)} for d in proposal.decisions],
        "allow": {"before": proposal.allow_before, "after": proposal.allow_after},
        "file": str(suggestion.file), "changed": suggestion.after != suggestion.before,
        "written": suggestion.written, "diff": suggestion.diff(),
    }
