"""Intake: what happened becomes notifications, one module per family of events.

- ``requests``: ``notification.requested``, ``notification.cancel_requested``
- ``matches``: ``match.found``
- ``digests``: ``digest.due``
- ``applications``: ``application.status_changed``, ``meeting.*``, ``reminder.due``
- ``users``: ``user.signed_up``, ``user.deleted``
- ``jobs``: ``job.*``, the dispatcher's copy of the jobs the others word

The SQL of each sits beside it in ``<family>_data.py``; what they share is in
``_base.py``. A notification goes from here to ``planning.py``, then to
``delivery.py``.
"""

from ._base import IntakeDeps

__all__ = ["IntakeDeps"]
