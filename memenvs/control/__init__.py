"""RL memory tasks whose actions change what comes next; each module registers its own ids."""
