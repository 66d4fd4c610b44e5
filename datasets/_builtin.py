"""Import every built-in adapter module so its splits register themselves."""
