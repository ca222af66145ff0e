import sys
from pathlib import Path

# Lets this test run from a checkout without installing the example (installed, it is found anyway).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
