"""Report: tables and shared figures, verdict tables and findings, the reproduction report, published numbers.
May import: the package root, stats/ and runs/ (a report reads stored runs)."""
