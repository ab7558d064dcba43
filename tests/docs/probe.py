"""Wait until a server started by a doc line answers GET URL with 200 (exit 0), or say why
not (exit 1): it exited (its PID is gone) or the deadline passed. Runs inside the doc-test
session, so names and ports are the session's (sitecustomize)."""

from __future__ import annotations

import argparse
import os
import ssl
import sys
import time
import urllib.error
import urllib.request


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--cafile")
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args()
    context = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    deadline = time.monotonic() + args.timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            os.kill(args.pid, 0)
        except ProcessLookupError:
            print(f"the server exited before answering {args.url}", file=sys.stderr)
            return 1
        try:
            with opener.open(args.url, timeout=5) as response:
                if response.status == 200:
                    return 0
                last = f"status {response.status}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    print(f"{args.url} did not answer 200 within {args.timeout:.0f} s: {last}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
