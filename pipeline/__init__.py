"""servicedesk-etl: ServiceDesk XLSX exports into typed PostgreSQL through three gates."""

__version__ = "0.1.0"
