"""Who is who: the clients directory from a file, and the shop's staff."""
