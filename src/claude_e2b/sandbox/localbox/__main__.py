"""``python -m claude_e2b.sandbox.localbox``: the edge that reads the server's environment."""

import os
import sys

from .envd_protocol import without_sdk_client

without_sdk_client()  # before the server imports envd's generated modules

from .server import main  # noqa: E402 - after the line above, on purpose

raise SystemExit(main(sys.argv[1:], os.environ))
