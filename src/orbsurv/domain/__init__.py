"""The pure core: entities, value objects and rules. Imports nothing but the standard library."""
