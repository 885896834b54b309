"""pytest plugin of the data contracts (placeholder until the executor lands)."""
