"""python -m bench: brings the stack up, runs the scenarios, writes bench/results/latest.{json,png}."""

import sys

from bench.run import main

sys.exit(main())
