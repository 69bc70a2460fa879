"""Pure functions from model objects to view models: no Flask, no SQL."""
