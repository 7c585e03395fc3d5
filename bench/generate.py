"""Write a synthetic fleet to ``bench/data/<scale>/``: snapshot.json, policies/, meta.json.

    python -m bench.generate --scale typical|large|10x [--out DIR]

The snapshot is written incrementally: agents go straight to the file while their grants and
credentials go to two spill files that are appended afterwards, so memory stays flat however
large the fleet. Output is byte-for-byte deterministic for a given scale.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from bench import fleet
from bench.scales import DATA_ROOT, NOW, SCALES, SEED, Scale, data_dir

GENERATOR_VERSION = 1
"""Bump when the generated data changes, so stale data under bench/data/ is regenerated."""

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _write_items(out: IO[str], items: list[dict[str, Any]], first: bool) -> bool:
    """Append items to an open JSON array, one per line; return whether the array is still empty."""
    if not items:
        return first
    body = _ENCODE(items)[1:-1].replace("},{", "},\n{")
    out.write(body if first else ",\n" + body)
    return False


def write_snapshot(path: Path, scale: Scale) -> dict[str, int]:
    """Stream the whole fleet to ``path`` in the inventory format; return the item counts."""
    counts = {"agents": 0, "grants": 0, "credentials": 0}
    spill_dir = Path(tempfile.mkdtemp(prefix="spill-", dir=path.parent))
    try:
        with (open(path, "w", encoding="utf-8") as out,
              open(spill_dir / "grants", "w+", encoding="utf-8") as grants,
              open(spill_dir / "credentials", "w+", encoding="utf-8") as credentials):
            sources = [fleet.source_report(source) for source in range(scale.sources)]
            out.write(f'{{"version":1,"collected_at":"{NOW:%Y-%m-%dT%H:%M:%SZ}",'
                      f'"sources":{_ENCODE(sources)},\n"agents":[\n')
            first = {"agents": True, "grants": True, "credentials": True}
            for record in fleet.iter_agents(scale):
                first["agents"] = _write_items(out, [record.agent], first["agents"])
                first["grants"] = _write_items(grants, record.grants, first["grants"])
                first["credentials"] = _write_items(credentials, record.credentials,
                                                    first["credentials"])
                counts["agents"] += 1
                counts["grants"] += len(record.grants)
                counts["credentials"] += len(record.credentials)
            for name, spill in (("grants", grants), ("credentials", credentials)):
                out.write(f'\n],\n"{name}":[\n')
                spill.seek(0)
                shutil.copyfileobj(spill, out, 1 << 20)
            out.write("\n]}\n")
    finally:
        shutil.rmtree(spill_dir, ignore_errors=True)
    return counts


def _flow(items: list[str] | tuple[str, ...]) -> str:
    """A YAML flow sequence of double-quoted strings (JSON strings are valid YAML)."""
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def defaults_yaml() -> str:
    return (
        "apiVersion: scopekeeper/v1\n"
        "kind: Defaults\n"
        f"deny: {_flow(fleet.DEFAULT_DENY)}\n"
        "credentials: {max_age: 180d, warn_before: 14d, require_expiry: true}\n"
        "unused_after: 30d\n"
    )


def policy_yaml(scale: Scale, group: int) -> str:
    policy = fleet.team_policy(group)
    lines = [
        "apiVersion: scopekeeper/v1",
        "kind: AgentPolicy",
        f"name: {policy.team}",
        "match:",
        f"  agents: {_flow(fleet.policy_agents(scale, group))}",
        f"owner: {policy.team}",
        "allow:",
        *(f"  {integration}: {_flow(entries)}" for integration, entries in policy.allow.items()),
    ]
    if policy.deny:
        lines.append(f"deny: {_flow(policy.deny)}")
    if policy.max_age_days is not None:
        lines.append(f"credentials: {{max_age: {policy.max_age_days}d}}")
    return "\n".join(lines) + "\n"


def write_policies(directory: Path, scale: Scale) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "defaults.yaml").write_text(defaults_yaml(), encoding="utf-8")
    for group in range(scale.policies):
        (directory / f"{fleet.team_name(group)}.yaml").write_text(
            policy_yaml(scale, group), encoding="utf-8")
    return scale.policies


def meta_for(scale: Scale) -> dict[str, Any]:
    return {"generator_version": GENERATOR_VERSION, "seed": SEED, "scale": scale.name,
            "now": NOW.isoformat().replace("+00:00", "Z"), "agents": scale.agents,
            "grants": scale.grants, "credentials": scale.credentials,
            "policies": scale.policies, "sources": scale.sources}


def is_current(directory: Path, scale: Scale) -> bool:
    """Whether ``directory`` already holds this generator's complete output for ``scale``."""
    try:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return {key: meta.get(key) for key in meta_for(scale)} == meta_for(scale)


def generate(scale: Scale, directory: Path) -> dict[str, Any]:
    """Write the fleet into ``directory`` (replacing what was there); return meta.json's content.

    meta.json is written last, so an interrupted run never looks complete."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "meta.json").unlink(missing_ok=True)
    if (directory / "policies").exists():
        shutil.rmtree(directory / "policies")
    started = time.perf_counter()
    counts = write_snapshot(directory / "snapshot.json", scale)
    write_policies(directory / "policies", scale)
    meta = {**meta_for(scale), **counts,
            "snapshot_bytes": os.path.getsize(directory / "snapshot.json"),
            "generate_seconds": round(time.perf_counter() - started, 2)}
    (directory / "meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def ensure_generated(scale: Scale, root: Path = DATA_ROOT) -> Path:
    directory = data_dir(scale, root)
    if not is_current(directory, scale):
        print(f"generating the {scale.name} fleet into {directory} ...", file=sys.stderr)
        generate(scale, directory)
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", choices=sorted(SCALES), default="typical")
    parser.add_argument("--out", type=Path, default=None,
                        help="directory to write (default: bench/data/<scale>)")
    args = parser.parse_args(argv)
    scale = SCALES[args.scale]
    meta = generate(scale, args.out or data_dir(scale))
    print(json.dumps(meta, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
