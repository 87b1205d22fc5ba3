"""Prints, as JSON, how each chatcart service of a compose file runs:
{service: {"env": {variable: value}, "restart": ..., "healthcheck": [...]}},
anchors and merge keys resolved.
A value naming a file a service bind-mounts read-only is replaced by the
file's path on this machine, so `chatcart config check` can read it.
Used by tests/tests/compose.rs.

    python3 services.py docker/compose.yml
"""

import json
import os
import sys

import yaml


def main() -> int:
    path = sys.argv[1]
    base = os.path.dirname(os.path.abspath(path))
    with open(path) as f:
        compose = yaml.safe_load(f)
    out = {}
    for name, service in compose["services"].items():
        if service.get("image") != "chatcart:local":
            continue
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        mounts = {}
        for volume in service.get("volumes") or []:
            parts = volume.split(":")
            if len(parts) >= 2 and parts[0].startswith("."):
                mounts[parts[1]] = os.path.normpath(os.path.join(base, parts[0]))
        check = service.get("healthcheck") or {}
        out[name] = {
            "env": {k: mounts.get(v, v) for k, v in env.items()},
            "restart": str(service.get("restart", "")),
            "healthcheck": [] if check.get("disable") else [str(x) for x in check.get("test", [])],
        }
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
