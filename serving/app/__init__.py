"""The application layer: the use cases (recommend, feedback, items, admin, preview, index
sync), talking to the outside only through the Protocols of ``serving.app.ports``."""
