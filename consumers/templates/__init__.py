"""Templates: notification types defined once, rendered per locale.

``definition.py`` (the shape and the registration check), ``render.py`` (Jinja2's
sandbox with Babel's plural rules and formats; locale fallback), ``projection.py``
(``template.registered`` → the template's versions), ``store.py`` (reads, cached).
A template is registered by appending ``template.registered`` (api/routes_templates.py);
a notification published with a template records ``{id, version, locale}`` and the text
it was rendered to, so replay and every retry send exactly that text.
"""
