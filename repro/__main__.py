"""`python -m repro ...` is the `repro` command."""

from repro.cli import main

raise SystemExit(main())
