"""`python -m seqshape ...` (also what `torchrun -m seqshape` runs)."""

import sys

from .cli import main

sys.exit(main())
