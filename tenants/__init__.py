"""Domain and persistence: SQLModel tables, services and migrations. No web imports."""
