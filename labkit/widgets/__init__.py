"""Interactive apps for the chapters: each builds its figure once and updates artists in place.

Every app has plain update methods that tests call without a browser, a ``.widget`` to
display, and an error area where exceptions raised in callbacks are shown.
"""

from .base import App

__all__ = ["App"]
