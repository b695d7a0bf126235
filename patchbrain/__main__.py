"""`python -m patchbrain` is the CLI."""

from patchbrain.cli import main

raise SystemExit(main())
