"""The billing system of record: tables, the database engine, and the queries both API and worker use."""
