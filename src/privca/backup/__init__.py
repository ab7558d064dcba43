"""Backup and restore of a CA home and its store: `privca backup`, `backup verify` and
`restore`. archive.py is the format, snapshot.py the store copy, create.py, restore.py and
verify.py the three operations."""
