"""soundtag's database: tables (models), public views (views), migrations, and the only modules
that read and write rows, one per noun: jobs, files, results, embeddings, taxonomies, decisions,
predictions, reviews, labeled_files (sql holds their shared statement helpers). Others use
``db.schema`` to connect and those modules to act."""
