//! Brook connectors: file, SQLite and Parquet connectors for brook-connect.
