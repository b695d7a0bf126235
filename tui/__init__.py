"""patchbrain-tui: a Textual client of patchbrain's public API."""
