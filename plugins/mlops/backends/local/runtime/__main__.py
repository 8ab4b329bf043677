"""``python -m mlops.backends.local.runtime serve|start|stop|status``."""

import sys

from mlops.backends.local.runtime.service import main

sys.exit(main())
