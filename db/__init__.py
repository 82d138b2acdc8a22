"""soundtag's database: tables (models), public views (views), migrations, and the one place
that reads and writes them (store). Others use ``db.schema`` to connect and ``db.store`` to act."""
