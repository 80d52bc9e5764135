"""``python -m clusterd``."""

from .cli import main

raise SystemExit(main())
