"""The SDK-compatible proxy: /v1/* calls routed to providers, with usage recorded."""
