"""Prefect flows for orderguard: thin wiring over plain functions in orderguard."""
