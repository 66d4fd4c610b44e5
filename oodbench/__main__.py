"""``python -m oodbench`` (also what ``torchrun -m oodbench`` runs)."""
import sys

from .cli import main

sys.exit(main())
