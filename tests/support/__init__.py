"""Helpers shared by the tests: the test clock, the daemon harness, factories."""
