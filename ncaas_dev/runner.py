"""`python -m ncaas_dev.runner` and `import ncaas_dev.runner`, as before the folders of issue 19:
the code is ncaas_dev.runs.runner (moves-19 shim)."""

import sys

from ncaas_dev.runs.runner import *  # noqa: F403
from ncaas_dev.runs.runner import main

if __name__ == "__main__":
    sys.exit(main())
