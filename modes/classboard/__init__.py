"""The class board tab: a teacher creates a class and projects its board; learners join it with a code."""
