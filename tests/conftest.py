import os

# Keep numpy single-threaded in tests: CI has 2 cores and runs tests in parallel.
os.environ.setdefault("OMP_NUM_THREADS", "1")
