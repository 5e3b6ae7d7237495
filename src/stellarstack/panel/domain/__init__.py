"""Business domains of the panel, one folder each: routes (thin), service, schemas."""
