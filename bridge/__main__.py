"""`python -m bridge` runs the `speakbridge` command line."""

from bridge.cli import main

raise SystemExit(main())
