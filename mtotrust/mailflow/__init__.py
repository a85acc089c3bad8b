"""``mtotrust.mailflow``: an SMTP content filter that tags or un-tags mail by MTO trust (the ``mailflow`` extra).

:class:`MailFilter` is what ``mtotrust filter`` runs: the MTA hands it every message (Postfix ``content_filter``,
or a relay in front of Exchange Online through a connector); it decides with ``engine.mail_message``, adds the
``X-MTOTrust`` field (removing any a sender forged), prefixes the Subject when tagging, and relays the message to
the next hop with the same envelope. See ``docs/mailflow.md``.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

from mtotrust.mailflow._filter import DEFAULT_MAX_SIZE, MailFilter, classic_policy, pilot_recipients
from mtotrust.mailflow._message import FIELD, header_field, header_section, rewrite

__all__ = ["DEFAULT_MAX_SIZE", "FIELD", "MailFilter", "classic_policy", "header_field", "header_section",
           "pilot_recipients", "rewrite"]
