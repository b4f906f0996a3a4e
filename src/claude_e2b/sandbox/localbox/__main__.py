"""``python -m claude_e2b.sandbox.localbox``: the edge that reads the server's environment."""

import os
import sys

from .server import main

raise SystemExit(main(sys.argv[1:], os.environ))
