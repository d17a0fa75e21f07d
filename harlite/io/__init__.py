"""Reading and writing outside the process safely: atomic files, the one sha256, bounded readers,
folder locks, the cache folder, and the schema language for JSON read from outside."""
