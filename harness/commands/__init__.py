"""The subcommands of ``harness``, one module each; ``harness.cli`` gathers them."""
