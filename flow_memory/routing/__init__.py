"""Quote and route: evaluate every provider and ask under a buyer's policy."""
