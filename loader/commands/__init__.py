"""The commands besides `load`, as library functions the CLI and the tests call."""
