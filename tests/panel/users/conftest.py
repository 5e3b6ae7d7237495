"""The account fixtures (SMTP server, account panel, clients) shared with tests/panel/auth."""

from tests.panel.auth.conftest import account_panel, account_settings, api, inbox, smtp_server

__all__ = ["account_panel", "account_settings", "api", "inbox", "smtp_server"]
