"""Reusable, framework-free pattern classes used by the demo services."""
