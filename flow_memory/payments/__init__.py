"""The disabled payment-challenge preview: an audit record, never an execution path."""
