"""``python -m speechbrain_mtmm <verb>``: the same as ``mtmm <verb>``."""

import sys

from speechbrain_mtmm.cli import main

sys.exit(main())
