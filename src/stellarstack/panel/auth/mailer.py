"""Sending account email over SMTP (aiosmtplib), or logging the link when SMTP is not set.

A solo operator on the embedded default has no mail server: with `STELLAR_SMTP_HOST` empty the
message (and so the verification or reset link) is written to the panel's log instead, where
that operator can read it. Configure SMTP before opening sign-up to other people.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Annotated

import aiosmtplib
from fastapi import Depends, Request

from stellarstack.logs import get_logger
from stellarstack.panel.errors import DependencyUnavailable
from stellarstack.settings import PanelSettings

__all__ = ["Mail", "Mailer", "MailerDep", "get_mailer", "password_reset_mail", "verification_mail"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Mail:
    """One plain-text message to one address."""

    to: str
    subject: str
    body: str
    link: str


class Mailer:
    """Sends `Mail` with the panel's SMTP settings."""

    def __init__(self, settings: PanelSettings) -> None:
        """Keep the settings; nothing connects until a message is sent."""
        self._settings = settings
        self._pending: set[asyncio.Task[None]] = set()

    @property
    def configured(self) -> bool:
        """Whether an SMTP server is set (otherwise messages are logged)."""
        return bool(self._settings.smtp_host)

    def _message(self, mail: Mail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._settings.mail_from
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Message-ID"] = make_msgid(domain="stellarstack")
        message.set_content(mail.body)
        return message

    async def send(self, mail: Mail) -> None:
        """Deliver a message; 503 when the SMTP server cannot be reached."""
        settings = self._settings
        if not settings.smtp_host:
            log.warning(
                "mail.not_sent_smtp_unconfigured", to=mail.to, subject=mail.subject, link=mail.link
            )
            return
        try:
            await aiosmtplib.send(
                self._message(mail),
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username or None,
                password=settings.smtp_password or None,
                use_tls=settings.smtp_security == "tls",
                start_tls=settings.smtp_security == "starttls",
                timeout=settings.smtp_timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            log.error("mail.send_failed", to=mail.to, host=settings.smtp_host, error=repr(exc))
            raise DependencyUnavailable(
                "The email could not be sent because the mail server is unavailable. "
                "Try again later, or ask the panel administrator to check the SMTP settings."
            ) from exc
        log.info("mail.sent", to=mail.to, subject=mail.subject)

    def send_later(self, mail: Mail) -> None:
        """Send in the background, so the answer does not reveal whether a message went out."""
        task = asyncio.get_running_loop().create_task(self._send_logged(mail))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send_logged(self, mail: Mail) -> None:
        # Logged by send(); nobody is waiting for this answer.
        with contextlib.suppress(DependencyUnavailable):
            await self.send(mail)

    async def drain(self) -> None:
        """Wait for the messages being sent in the background (shutdown, tests)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


def verification_mail(public_url: str, to: str, token: str) -> Mail:
    """The message that confirms an address belongs to the account."""
    link = f"{public_url.rstrip('/')}/auth/verify?token={token}"
    body = (
        "Confirm this email address for your StellarStack account by opening:\n\n"
        f"{link}\n\nThe link works once and expires in 24 hours. "
        "If you did not ask for this, ignore this message.\n"
    )
    return Mail(to, "Confirm your email address", body, link)


def password_reset_mail(public_url: str, to: str, token: str) -> Mail:
    """The message that lets someone choose a new password."""
    link = f"{public_url.rstrip('/')}/auth/reset?token={token}"
    body = (
        "Someone asked to reset the password of your StellarStack account. To choose a new "
        f"password, open:\n\n{link}\n\nThe link works once and expires in 1 hour. "
        "If it was not you, ignore this message; your password has not changed.\n"
    )
    return Mail(to, "Reset your password", body, link)


def get_mailer(request: Request) -> Mailer:
    """The app's mailer, made from its settings on first use."""
    mailer = getattr(request.app.state, "mailer", None)
    if mailer is None:
        mailer = Mailer(request.app.state.settings)
        request.app.state.mailer = mailer
    assert isinstance(mailer, Mailer)
    return mailer


MailerDep = Annotated[Mailer, Depends(get_mailer)]
