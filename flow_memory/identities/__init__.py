"""Agent identities, bound and free, and the keys issued to free agents."""
