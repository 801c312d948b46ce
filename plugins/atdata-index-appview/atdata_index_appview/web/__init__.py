"""The AppView's web pages: browse and search the index from a browser.

==============================  ==============================================================
``/``                           search: text (``q``), tags (``tags``, one each, or ``tag``, comma-separated),
                                ``schema`` (an AT-URI), ``author`` (handle or DID); paged by cursor
``/dataset/<account>/<rkey>``   a dataset: its schema's fields, storage, size, labels, the lenses
                                touching its schema, the line of Python that loads it
``/schema/<account>/<rkey>``    a schema: its fields, its versions and what changed between them
``/account/<account>``          an account's datasets, schemas and lenses
==============================  ==============================================================

``<account>`` is a DID or a handle the index knows. The pages are rendered on
the server (Jinja2, autoescaped) and load nothing: no script, no font, no
style sheet but their own inline one. Every value shown comes from a
stranger's record and is treated so (see :mod:`atdata_index_appview.web._present`).

::

    from atdata_index_appview.web import page_routes
    routes = [*api_routes, *page_routes(methods)]
"""

from __future__ import annotations

from atdata_index_appview.web._pages import page_routes

__all__ = ["page_routes"]
