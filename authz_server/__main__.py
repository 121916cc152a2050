"""``python -m authz_server`` runs the ``authz-server`` command."""

import sys

from authz_server.cli import main

sys.exit(main())
