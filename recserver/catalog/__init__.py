"""The item catalogue: which items may be recommended (hidden, expiry) and their categories.

Updates travel through the event log like events (``codec``), every replica applies them in
log order into a :class:`~recserver.catalog.state.CatalogState`, and each published snapshot
carries an immutable :class:`~recserver.catalog.view.CatalogView` that requests filter with.
"""
