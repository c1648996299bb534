"""CLI sub-commands, one module per area; each registers itself on ``cdclake.cli.cli``."""
