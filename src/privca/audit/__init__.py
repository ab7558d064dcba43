"""The audit log's use cases over the authority: verifying the chain, its checkpoints and
the inventory against it (verify.py)."""
