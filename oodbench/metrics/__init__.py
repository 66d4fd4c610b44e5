"""Pixel metrics and official evaluation protocols (pure numpy/scipy)."""
