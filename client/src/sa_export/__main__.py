"""`python -m sa_export`, the same as the `sa-export` command."""

from sa_export.cli import main

raise SystemExit(main())
