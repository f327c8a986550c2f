# Helpers for the collection's pytest suites (not shipped as plugins).
