"""``clearbg admin users``: console users (the first admin comes from here) and memberships."""

from __future__ import annotations

import sys

import click

from clearbg.cli.admin import _db, _print, _table, admin

__all__ = ["admin"]


@admin.group()
def users() -> None:
    """Console users: create (the first admin), set a password, list, add to or remove from an
    application."""


@users.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "member"]), default="member", show_default=True)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin (else: a prompt)."
)
@click.option("--app", "application", default=None, help="Make the user a member of this app.")
@click.pass_context
def users_create(
    ctx: click.Context, email: str, role: str, password_stdin: bool, application: str | None
) -> None:
    """Create a console user who signs in with EMAIL and a password."""
    from clearbg.accounts import keys
    from clearbg.accounts import users as service

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _db(ctx, creates=True) as db:
        user = service.create_user(db, email, password, role)
        if application:
            service.add_member(db, keys.find_application(db, application), user)
        click.echo(f"created {role} {user.email}")


@users.command("set-password")
@click.argument("email")
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin (else: a prompt)."
)
@click.pass_context
def users_set_password(ctx: click.Context, email: str, password_stdin: bool) -> None:
    """Set a console user's password (a forgotten one); signs them out everywhere."""
    from clearbg.accounts import users as service

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _db(ctx) as db:
        service.set_password(db, service.find_user(db, email), password)
    click.echo(f"the password of {email} is set; their console sessions are ended")


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """Every console user with their role and applications."""
    from sqlalchemy import select

    from clearbg.accounts import users as service
    from clearbg.store.models import User

    table = _table("email", "role", "active", "applications", "last sign-in")
    with _db(ctx) as db:
        for user in db.scalars(select(User).order_by(User.email)):
            names = ", ".join(a.name for a in service.visible_applications(db, user.id, user.role))
            seen = user.last_login_at.strftime("%Y-%m-%d %H:%M") if user.last_login_at else "never"
            table.add_row(  # type: ignore[attr-defined]
                user.email,
                user.role,
                str(user.active),
                names if user.role != "admin" else "all",
                seen,
            )
    _print(table)


@users.command("add-member")
@click.argument("email")
@click.argument("application")
@click.pass_context
def users_add_member(ctx: click.Context, email: str, application: str) -> None:
    """Let the member EMAIL see APPLICATION (name or id) in the console."""
    from clearbg.accounts import keys
    from clearbg.accounts import users as service

    with _db(ctx) as db:
        service.add_member(db, keys.find_application(db, application), service.find_user(db, email))
    click.echo(f"{email} is a member of {application}")


@users.command("remove-member")
@click.argument("email")
@click.argument("application")
@click.pass_context
def users_remove_member(ctx: click.Context, email: str, application: str) -> None:
    """Take APPLICATION away from the member EMAIL."""
    from clearbg.accounts import keys
    from clearbg.accounts import users as service

    with _db(ctx) as db:
        service.remove_member(
            db, keys.find_application(db, application), service.find_user(db, email)
        )
    click.echo(f"{email} is no longer a member of {application}")
