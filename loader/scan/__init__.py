"""Scanning a scrape: walk the tree, plan the load, and (in worker processes) parse search files,
resolve and hash screenshots, and clean rows into columns. Files in, columns out: nothing here
touches the database or the image store."""
