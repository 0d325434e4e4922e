"""Icons, themes and the .desktop template, shipped as package data (`app.resources`)."""
