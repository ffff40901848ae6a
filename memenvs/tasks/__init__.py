"""Sequence-to-sequence memory tasks; each module registers its own ids on import."""
