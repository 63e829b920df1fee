"""Security core: markings, access expressions, subjects, policy, audit hashing, crypto."""
