"""The rules: every change to what opmail manages, one module per thing.

The admin views, the bulk actions, the Panel webhook and the CLI all call these functions; each is
one transaction, and none reads Flask's ``request``. A bulk action and a single edit are the same
rule applied to a list of ids: the functions take id lists and run one set-based statement per
table, whatever the selection size.
"""
