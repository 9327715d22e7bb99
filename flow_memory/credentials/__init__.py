"""Credential references: opaque pointers to secrets managed on the operator's side."""
