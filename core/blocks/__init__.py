"""Built-in sequence mixers; importing this package registers them all."""
