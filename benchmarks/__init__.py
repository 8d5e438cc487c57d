"""The benchmark of flowcourse against zuko, nflows and normflows (see README.md)."""
