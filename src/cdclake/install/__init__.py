"""Installing what cdclake needs: PostgreSQL from Debian, the JVM engines via Maven."""
