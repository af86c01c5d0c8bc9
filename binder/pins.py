"""Print the lines of a pip constraints file that pin a distribution not installed yet.

binder/postBuild installs the course with these, so pip adds the pinned versions of what
is missing and keeps every package conda installed (the Jupyter server among them).
"""
import re
import sys
from importlib import metadata


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def missing_pins(lines, installed) -> list[str]:
    """The ``name==version`` lines whose distribution is not in ``installed`` (canonical names)."""
    kept = []
    for line in lines:
        line = line.split("#", 1)[0].strip()
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if name and canonical(name.group()) not in installed:
            kept.append(line)
    return kept


if __name__ == "__main__":
    installed = {canonical(d.metadata["Name"]) for d in metadata.distributions()}
    with open(sys.argv[1]) as pins:
        print("\n".join(missing_pins(pins, installed)))
