"""Built-in task definitions (TOML files), installed as the ``harness_tasks`` package."""
