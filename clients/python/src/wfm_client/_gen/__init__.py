"""Generated code (see clients/python/generate.sh). Do not edit."""
