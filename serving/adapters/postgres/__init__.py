"""PostgreSQL access (psycopg 3 + psycopg_pool), one module per aggregate."""
