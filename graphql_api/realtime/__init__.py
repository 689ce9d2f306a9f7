"""Live events (SPEC §8): what happened, who listens, and how events cross processes."""
