"""Synthetic benchmark generator."""
