"""In-memory port implementations for fast unit tests of the core."""
