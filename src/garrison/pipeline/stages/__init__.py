"""Built-in pipeline stages; each registers itself on import."""
