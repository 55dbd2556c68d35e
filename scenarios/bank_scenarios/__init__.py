"""Classroom scenarios: named incidents, declared as data in scenarios/catalogue/, caused for
real against a running stack and undone by themselves at their deadlines (README.md beside
this package)."""
