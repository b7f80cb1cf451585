"""Thin command-line layers, one module per subcommand family."""
