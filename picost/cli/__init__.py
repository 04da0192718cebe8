"""Stage 5, the command line: thin typer commands, each calling one library function
(:mod:`.main` holds the app; :mod:`.whatif` the what-if commands)."""
