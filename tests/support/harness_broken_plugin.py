"""A plugin whose module raises on import, as a plugin with a bug or a missing dependency does."""

raise RuntimeError("this plugin is broken on purpose")
