"""Built-in pipeline stages; each registers itself on import."""

#: Nothing at package level: stages are reached by name through the pipeline registry.
__all__: list[str] = []
