"""The controls, in pipeline order: edge, filter, authenticate, authorise, validate.

Each is a pure function of the canonical request, the settings and what an
earlier step established; it returns a value or raises a
:class:`~kaitiaki.errors.Refusal`.
"""
