#!/usr/bin/env python3
"""A real SMTP server for the tests (aiosmtpd), on loopback.

Modes (--security):
  starttls  plain connection that must be upgraded with STARTTLS before AUTH and MAIL (the way
            Office 365 and Gmail relays on port 587 are used)
  tls       implicit TLS from the first byte (SMTPS, port 465 style)
  none      plain text, no TLS
With --user/--password, AUTH (PLAIN or LOGIN) is required before MAIL.
With --xoauth2-user, only AUTH XOAUTH2 is offered and required: the SASL user must be that
mailbox and the bearer token one of --accept-token (repeatable); any other token is refused the
way Microsoft 365 refuses it ("535 5.7.3 Authentication unsuccessful"), or with
--xoauth2-style gmail the way Gmail does (a 334 challenge carrying an error JSON, then 535).
Each XOAUTH2 attempt is appended to auth.txt as "<user> <token> ok|refused".

Each accepted message n is written to --out as <n>.json (envelope, and the message as parsed by
Python's email package, headers decoded), then <n>.eml (the raw bytes as received): when the
.eml exists, the .json is complete. Each client connection that says EHLO/HELO is appended to
sessions.txt as host:port, so tests can count connections.

--fail-on rcpt|data with --fail-reply "451 4.3.0 try later" answers that reply at that stage.
--no-8bitmime leaves 8BITMIME out of the EHLO reply (an old relay): 8-bit data is then refused.
Each message's MAIL FROM parameters (e.g. BODY=8BITMIME) are in its .json as mail_options.
Prints "ready <port>" on stdout once it accepts connections.
"""

import argparse
import base64
import email
import email.policy
import itertools
import json
import os
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult, LoginPassword


def write_atomically(path, data):
    temp = path + ".tmp"
    with open(temp, "wb") as f:
        f.write(data)
    os.replace(temp, path)


def summary(envelope, session, raw):
    message = email.message_from_bytes(raw, policy=email.policy.default)
    parts = []
    for part in message.walk():
        if part.is_multipart():
            continue
        parts.append({
            "content_type": part.get_content_type(),
            "charset": part.get_content_charset(),
            "body": part.get_content(),
        })
    return {
        "mail_from": envelope.mail_from,
        "mail_options": list(envelope.mail_options),
        "rcpt_tos": list(envelope.rcpt_tos),
        "peer": "%s:%s" % tuple(session.peer[:2]),
        "content_type": message.get_content_type(),
        "subject": str(message["subject"]),
        "headers": {k: str(v) for k, v in message.items()},
        "parts": parts,
    }


class Handler:
    def __init__(self, out, fail_on, fail_reply, no_8bitmime=False):
        self.out = out
        self.fail_on = fail_on
        self.fail_reply = fail_reply
        self.no_8bitmime = no_8bitmime
        self.count = itertools.count(1)


    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.note_session(session)
        session.host_name = hostname
        if self.no_8bitmime:
            responses = [r for r in responses if r != "250-8BITMIME"]
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.no_8bitmime and "BODY=8BITMIME" in mail_options:
            return "555 5.5.4 BODY=8BITMIME not offered"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_HELO(self, server, session, envelope, hostname):
        self.note_session(session)
        session.host_name = hostname
        return "250 {}".format(server.hostname)

    def note_session(self, session):
        with open(os.path.join(self.out, "sessions.txt"), "a") as f:
            f.write("%s:%s\n" % tuple(session.peer[:2]))

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.fail_on == "rcpt":
            return self.fail_reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.fail_on == "data":
            return self.fail_reply
        n = next(self.count)
        raw = envelope.original_content or envelope.content
        info = json.dumps(summary(envelope, session, raw), indent=2).encode()
        write_atomically(os.path.join(self.out, "%d.json" % n), info)
        write_atomically(os.path.join(self.out, "%d.eml" % n), raw)
        return "250 2.0.0 Ok: queued as %d" % n


class XOAuth2Handler(Handler):
    """Handler that also implements AUTH XOAUTH2 (aiosmtpd picks up `auth_<MECHANISM>`)."""

    def __init__(self, out, fail_on, fail_reply, user, tokens, style):
        super().__init__(out, fail_on, fail_reply)
        self.user = user
        self.tokens = set(tokens)
        self.style = style

    async def auth_XOAUTH2(self, server, args):
        if len(args) > 1:
            blob = args[1].encode()
        else:
            blob = await server.challenge_auth("", encode_to_b64=False)
            if blob is MISSING:
                return AuthResult(success=False, handled=True)
        try:
            text = base64.b64decode(blob, validate=True).decode() if len(args) > 1 else blob.decode()
        except (ValueError, UnicodeDecodeError):
            return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode")
        # user=<mailbox>^Aauth=Bearer <token>^A^A
        fields = dict(f.split("=", 1) for f in text.split("\x01") if "=" in f)
        user = fields.get("user", "")
        token = fields.get("auth", "").removeprefix("Bearer ")
        ok = user == self.user and token in self.tokens
        with open(os.path.join(self.out, "auth.txt"), "a") as f:
            f.write("%s %s %s\n" % (user, token, "ok" if ok else "refused"))
        if ok:
            return AuthResult(success=True, auth_data=user)
        if self.style == "gmail":
            error = json.dumps({"status": "401", "schemes": "Bearer",
                                "scope": "https://mail.google.com/"})
            await server.challenge_auth(error)
            return AuthResult(success=False, handled=False,
                              message="535 5.7.8 Username and Password not accepted")
        return AuthResult(success=False, handled=False,
                          message="535 5.7.3 Authentication unsuccessful")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--security", choices=["starttls", "tls", "none"], default="starttls")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user")
    p.add_argument("--password")
    p.add_argument("--out", required=True)
    p.add_argument("--fail-on", choices=["rcpt", "data"])
    p.add_argument("--fail-reply", default="451 4.3.0 try later")
    p.add_argument("--xoauth2-user")
    p.add_argument("--accept-token", action="append", default=[])
    p.add_argument("--xoauth2-style", choices=["microsoft", "gmail"], default="microsoft")
    p.add_argument("--no-8bitmime", action="store_true")
    args = p.parse_args()

    context = None
    if args.security != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (isinstance(auth_data, LoginPassword)
              and auth_data.login == args.user.encode()
              and auth_data.password == args.password.encode())
        # handled=False: aiosmtpd then answers "535 5.7.8 Authentication credentials invalid".
        return AuthResult(success=ok, handled=False, auth_data=auth_data)

    options = {}
    if args.user is not None:
        options.update(authenticator=authenticator, auth_required=True)
    handler = Handler(args.out, args.fail_on, args.fail_reply, args.no_8bitmime)
    if args.xoauth2_user is not None:
        handler = XOAuth2Handler(args.out, args.fail_on, args.fail_reply, args.xoauth2_user,
                                 args.accept_token, args.xoauth2_style)
        options.update(auth_required=True, auth_exclude_mechanism=["LOGIN", "PLAIN"])
    if args.security == "starttls":
        options.update(tls_context=context, require_starttls=True)
    else:
        # Implicit TLS is TLS from the first byte, and `none` is for relays that take plain AUTH:
        # aiosmtpd only counts STARTTLS as encryption, so its own check is off here.
        options.update(auth_require_tls=False)
    if args.security == "tls":
        options.update(ssl_context=context)

    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=args.port,
        server_hostname="localhost",
        **options,
    )
    controller.start()
    print("ready %d" % args.port, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    sys.exit(main())
