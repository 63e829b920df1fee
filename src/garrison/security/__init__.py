"""Security core: markings, access expressions, subjects, policy, audit hashing, crypto."""

#: Nothing at package level: import from the modules (``security.markings``, ``.policy`` ...).
__all__: list[str] = []
