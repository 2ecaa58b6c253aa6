"""The daemon: the hook, its workers and the server's lifecycle."""
