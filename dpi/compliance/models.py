"""Models of this area (see its docs)."""
