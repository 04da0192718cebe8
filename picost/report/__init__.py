"""Stage 4, output: rendering results as tables, JSON, CSV, markdown reports, plots and the
generated protocol docs. Calls the library; the library never imports it."""
