"""``python -m authz_server.demo`` (what ``make run`` calls): see ``run.py``."""

import sys

from authz_server.demo.run import main

sys.exit(main())
