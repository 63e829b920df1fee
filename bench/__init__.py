"""Garrison benchmarks: each compares Garrison's path with a baseline run side by side."""
