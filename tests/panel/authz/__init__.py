"""Authorization-matrix entries, one module per area."""
