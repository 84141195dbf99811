"""Admin → Aliases: list (search, domain, pages), add, edit destinations, enable/disable, delete."""

from __future__ import annotations

from flask import abort, flash, redirect, request
from flask_admin import BaseView, expose

from ..addresses import InvalidInput
from ..htmx import is_htmx, toast
from ..queries import AliasFilters, alias_page
from ..rules import aliases
from .base import DomainFilter, ProtectedView
from .forms import AdminForm, AliasDestinationsForm, AliasForm


class AliasesView(DomainFilter, ProtectedView, BaseView):
    """Aliases are addressed by their address (``?alias=``): one alias is several rows."""

    def render_list(self, form: AliasForm | None = None, status: int = 200):
        filters = AliasFilters.from_args(request.args)
        context = {
            "filters": filters,
            "page": alias_page(filters),
            "form": form or AliasForm(formdata=None),
            "list_url": lambda **changes: self.get_url(".index_view", **filters.to_args(**changes)),
        }
        return self.render_list_page("opmail/admin/aliases", context, status, domains=self.domain_filter_choices)

    @expose("/")
    def index_view(self):
        return self.render_list()

    @expose("/new/", methods=("POST",))
    def create_view(self):
        form = AliasForm()
        if form.validate_on_submit():
            try:
                alias = aliases.create_alias(form.alias_email.data, form.destinations.data)
            except InvalidInput as error:
                form.add_error(error)
            else:
                flash(f"Alias {alias} added.", "success")
                return redirect(self.get_url(".index_view"))
        return self.render_list(form, 422)

    def _alias_or_404(self) -> tuple[str, list[str]]:
        alias = request.args.get("alias", "")
        destinations = aliases.alias_destinations(alias)
        if not destinations:
            abort(404)
        return alias, destinations

    @expose("/edit/", methods=("GET", "POST"))
    def edit_view(self):
        alias, destinations = self._alias_or_404()
        if request.method == "GET":
            form = AliasDestinationsForm(formdata=None, destinations="\n".join(destinations))
        else:
            form = AliasDestinationsForm()
            if form.validate_on_submit():
                try:
                    aliases.set_alias_destinations(alias, form.destinations.data)
                except InvalidInput as error:
                    form.add_error(error)
                else:
                    flash(f"Destinations of {alias} saved.", "success")
                    return redirect(self.get_url(".index_view"))
        status = 422 if form.errors else 200
        return self.render("opmail/admin/aliases/edit.html", alias=alias, form=form), status

    def _change(self, rule, message: str):
        """Apply ``rule`` to the alias in the URL; announce it, in place for htmx."""
        alias, _ = self._alias_or_404()
        if not AdminForm().validate_on_submit():
            abort(400)
        rule([alias])
        if is_htmx():
            return toast(self.render_list(), message.format(alias))
        flash(message.format(alias), "success")
        return redirect(self.get_url(".index_view"))

    @expose("/enable/", methods=("POST",))
    def enable_view(self):
        return self._change(lambda selected: aliases.set_aliases_active(selected, True), "Alias {} enabled.")

    @expose("/disable/", methods=("POST",))
    def disable_view(self):
        return self._change(
            lambda selected: aliases.set_aliases_active(selected, False), "Alias {} disabled: mail to it bounces."
        )

    @expose("/delete/", methods=("POST",))
    def delete_view(self):
        return self._change(aliases.delete_aliases, "Alias {} deleted.")
