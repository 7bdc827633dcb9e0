"""The step engine: steps as data, batched facts, check -> diff -> apply."""
