"""``python -m annobc.train CONFIG [key=value ...]`` (what torchrun runs)."""

import sys

from annobc.train.train import main

sys.exit(main())
