"""``python -m hub [--port N]``: serve the stand-in repositories in the foreground until Ctrl-C.

Once it serves it prints one line, ``HF_ENDPOINT=http://127.0.0.1:<port>``, to export before
opening a notebook (with ``COURSE_PROFILE=full`` to take the hub path)."""
from __future__ import annotations

import argparse

from . import fixtures
from .emulator import HubEmulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hub", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    port = parser.parse_args(argv).port
    hub = HubEmulator(fixtures.repos(), port=port, aliases=fixtures.ALIASES)
    print(f"HF_ENDPOINT={hub.url}", flush=True)
    try:
        hub.server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        hub.server.server_close()


if __name__ == "__main__":
    main()
