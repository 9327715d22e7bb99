"""The job board: job requests, sealed bids, awards, and the archive of results."""
