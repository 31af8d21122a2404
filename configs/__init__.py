"""Runnable YAML recipes, one folder per domain; every one is checked by tests/core/test_configs.py."""
