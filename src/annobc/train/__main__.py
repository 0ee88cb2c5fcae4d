"""``python -m annobc.train CONFIG [key=value ...]`` (what torchrun runs)."""

import sys

from annobc.train.command import main

sys.exit(main())
