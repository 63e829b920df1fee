"""Security core: markings, access expressions, subjects, policy, audit hashing, crypto."""

from garrison.security.audit import AuditAction

#: The audit actions are exported here; import everything else from its module
#: (``security.markings``, ``.policy`` ...).
__all__ = ["AuditAction"]
