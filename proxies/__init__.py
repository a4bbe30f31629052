"""proxies package."""
