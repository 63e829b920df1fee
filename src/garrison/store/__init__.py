"""Storage: workspace, catalog, sessions, audit-log persistence, keys."""
