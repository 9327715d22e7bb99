"""Provider-agent runtime: enrollment, pairing, heartbeats, catalog, capacity and health."""
