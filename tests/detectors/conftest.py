import sys
from pathlib import Path

# the helper module of this folder, importable under --import-mode=importlib
sys.path.insert(0, str(Path(__file__).parent))
