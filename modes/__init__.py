"""The app's modes: one module per tab, plus the shared model loader and UI strings."""
