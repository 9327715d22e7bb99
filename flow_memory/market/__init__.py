"""The market: order book, orders and cancels, depth, reservations and the feed."""
