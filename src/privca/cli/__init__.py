"""The command line: click commands, one module per verb group."""
