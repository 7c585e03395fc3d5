"""``plan``: load both policy sets and the inventory, then compare (service.plan.compare)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from service.errors import PolicyError
from service.plan.compare import Plan, make_plan
from service.plan.inventory import check_inventory_options, load_plan_inventory
from service.policy.loader import load_policy_set


def plan_policy_change(*, base_dir: Path, head_dir: Path, inventory: Path | None,
                       server: str | None, token_env: str, env: Mapping[str, str],
                       now: datetime, max_bytes: int) -> Plan:
    """The plan of changing the policy folder ``base_dir`` into ``head_dir``.

    Both sets must be valid (a broken base says so: it is the branch being merged into).
    """
    check_inventory_options(inventory=inventory, server=server)
    head = load_policy_set(head_dir)
    try:
        base = load_policy_set(base_dir)
    except PolicyError as exc:
        raise PolicyError([f"the base policy set is invalid: {problem}"
                           for problem in exc.problems]) from None
    loaded = load_plan_inventory(inventory=inventory, server=server, token_env=token_env,
                                 env=env, max_bytes=max_bytes)
    return make_plan(view=loaded.view, base=base, head=head, now=now, base_dir=str(base_dir),
                     head_dir=str(head_dir), origin=loaded.origin)
