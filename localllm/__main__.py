"""`python -m localllm`: the same entry point as the `localllm` script."""

import sys

from localllm.cli import main

sys.exit(main())
