"""In-context learning limits and choices. No torch here, so the UI can build its widgets before
the model libraries have loaded."""

from modes.data import SELECTIONS  # noqa: F401 - the widget reads it from here

MAX_K = 16
MAX_TEXT_CHARS = 500  # one sentence to translate; longer is not a sentence
MAX_NEW_TOKENS = 128
