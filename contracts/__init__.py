"""Data contracts: what each table must be (``schemas``), and the pytest gate that checks it."""
