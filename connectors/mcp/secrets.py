"""Find the secrets an MCP server entry uses, and tell references from literal values.

Where secrets sit: ``env`` values, ``headers`` values, arguments (``--api-key=V``,
``--access-token V``, ``--header "Authorization: Bearer V"``, ``-e NAME=V`` for docker and
podman, ``NAME=V``), passwords in connection strings (``scheme://user:password@host``,
``Password=V;``), secret query parameters of a URL, and Codex's ``bearer_token_env_var`` /
``env_http_headers`` / ``env_vars`` (which name environment variables).

Each use is classified as:

- ``env_reference``: ``${env:X}``, ``${X}``, ``$X``, ``%X%``, opencode's ``{env:X}``, a name in
  ``bearer_token_env_var``/``env_http_headers``/``env_vars``, ``docker -e NAME`` (no value);
- ``input_reference``: VS Code ``${input:id}`` (always a secret when the input has
  ``password: true``);
- ``file_reference``: opencode's ``{file:path}``;
- ``placeholder``: a value still to be filled in (``YOUR_*``, ``<YOUR_TOKEN>``, ``{secret}``,
  ``[REDACTED...]``, ``your-api-key-here``, elided examples such as ``sk-...`` or ``xxxxxx``);
- ``inline_secret``: anything else in a place that holds a secret, or any value shaped like a
  well-known token (GitHub, OpenAI/Anthropic, Slack, Stripe, AWS, Google, JWT, private keys...).

A place holds a secret when its name says so (``TOKEN``, ``SECRET``, ``PASSWORD``, ``KEY``,
``AUTH``, ``COOKIE``, ``CREDENTIALS``, ... unless the name ends in ``_URL``, ``_PATH``,
``_FILE``, ``_ID``, ``_NAME``, ``_TYPE`` and the like), when it is an ``Authorization``-style
value (``Bearer V``), a URL's password, or a connection string's ``Password=``. Literal values
are kept in memory only, for the fingerprint and for redaction; they are excluded from ``repr``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from urllib.parse import unquote

from connectors.mcp.shapes import Located, ServerSpec

REDACTED = "[REDACTED]"

SECRET_WORDS = frozenset({
    "TOKEN", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PASSPHRASE", "PWD", "PASS", "APIKEY",
    "KEY", "AUTH", "AUTHORIZATION", "CREDENTIAL", "CREDENTIALS", "CREDS", "COOKIE", "SESSION",
    "PAT", "DSN", "PRIVATE", "BEARER", "SIGNATURE",
})
SECRET_PARTS = ("PASSWORD", "SECRET", "APIKEY")  # PGPASSWORD, CLIENTSECRET
NOT_SECRET_LAST_WORDS = frozenset({
    "ID", "IDS", "URL", "URI", "URLS", "ENDPOINT", "HOST", "HOSTNAME", "PORT", "PATH", "FILE",
    "FILES", "DIR", "FOLDER", "NAME", "USER", "USERNAME", "TYPE", "KIND", "MODE", "TTL",
    "TIMEOUT", "EXPIRY", "EXPIRES", "EXPIRATION", "LIFETIME", "DURATION", "REGION", "LENGTH",
    "SIZE", "LIMIT", "COUNT", "MAX", "MIN", "VERSION", "FORMAT", "ALGORITHM", "ENABLED",
    "DISABLED", "REQUIRED", "PROVIDER", "SCOPE", "SCOPES", "ISSUER", "AUDIENCE", "METHOD",
    "STRATEGY", "LOCATION", "PREFIX", "STORE", "CACHE", "SERVER",
})
NOT_SECRET_VALUES = frozenset({
    "true", "false", "yes", "no", "on", "off", "null", "none", "undefined", "nil", "",
})
# Variables VS Code substitutes itself: not secrets and not environment variables.
EDITOR_VARIABLES = frozenset({
    "workspaceFolder", "workspaceFolderBasename", "workspaceRoot", "userHome", "cwd", "file",
    "fileDirname", "pathSeparator", "/", "execPath", "defaultBuildTask", "relativeFile",
})

_WORD_SPLIT = re.compile(r"[^A-Za-z0-9]+|(?<=[a-z0-9])(?=[A-Z])")
_INPUT_REF = re.compile(r"\$\{input:([^}]+)\}")
_ENV_REFS = (
    re.compile(r"\$\{env:([^}]+)\}"),
    re.compile(r"(?<!\$)\{env:([^}]+)\}"),
    re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-=?+][^}]*)?\}"),
    re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$"),
    re.compile(r"^%([A-Za-z_][A-Za-z0-9_]*)%$"),
)
_FILE_REF = re.compile(r"\{file:([^}]+)\}")
_REFERENCE_CHARS = frozenset("${%")
_PLACEHOLDERS = (
    re.compile(r"^<[^<>]+>$"),
    re.compile(r"^\{[^{}:]*\}$"),
    re.compile(r"^\[[^\[\]]*\]$"),
    re.compile(r"^(?:your|my|insert|enter|paste|replace|put|add|set)[-_ .]", re.IGNORECASE),
    re.compile(r"[-_ .](?:here|goes[-_ ]here)$", re.IGNORECASE),
    re.compile(r"^(?:redacted|changeme|change[-_]me|replace[-_]?me|placeholder|todo|tbd|fixme|"
               r"dummy|example)$", re.IGNORECASE),
    re.compile(r"[xX]{6,}|\*{3,}|\.\.\.|\u2026"),
)
_CONSTANT_NAME = re.compile(r"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
_TOKEN_SHAPES = re.compile(
    r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|sk-[A-Za-z0-9_-]{20,}|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|xox[abposre]-[A-Za-z0-9-]{10,}|(?:AKIA|ASIA)[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}"
    r"|hf_[A-Za-z0-9]{30,}|npm_[A-Za-z0-9]{36}|lin_api_[A-Za-z0-9]{30,}"
    r"|(?:secret|ntn)_[A-Za-z0-9]{40,}|sntrys_[A-Za-z0-9_=+/-]{40,}|ATATT[A-Za-z0-9_=-]{20,}"
    r"|pplx-[A-Za-z0-9]{30,}|tvly-[A-Za-z0-9-]{20,}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
)
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
MIN_TOKEN = 15
"""No token shape above is shorter."""
# What any secret outside a secret place needs: a URL, a reference, a password=, a scheme.
_MAY_HOLD_SECRET = re.compile(r"://|[$%{]|(?i:pass|pwd)|^\w+ ")
# ... and what an argument needs besides: a flag or an assignment (NAME=V, Name: V).
_MAY_BE_SECRET_WORD = re.compile(r"^-|[=:$%{]|(?i:pass|pwd)|^\w+ ")
_AUTH_SCHEME = re.compile(r"^(?:Bearer|Basic|Token|Bot|ApiKey|Api-Key|Digest)\s+(\S.*)$",
                          re.IGNORECASE | re.DOTALL)
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_CONNECTION_PASSWORD = re.compile(r"(?:^|;)\s*(?:password|pwd)\s*=\s*([^;]*)", re.IGNORECASE)
_FLAG_WITH_VALUE = re.compile(r"^--?([A-Za-z][\w.-]*)=(.*)$", re.DOTALL)
_FLAG = re.compile(r"^--?([A-Za-z][\w.-]*)$")
_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)\s*:\s*(.*)$", re.DOTALL)
_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(.*)$", re.DOTALL)
_ENV_FLAGS = ("-e", "--env")
_HEADER_FLAGS = ("-H", "--header")


class Slot(Enum):
    """How sure the place is to hold a secret."""

    NONE = 0
    """Not a secret place: only token-shaped values and URL passwords count."""
    WEAK = 1
    """``--token VALUE``: the next word may be a plain option value, so it must look secret."""
    STRONG = 2
    """A place named as a secret (env, header, ``--token=V``), or a password in a URL."""


@dataclass(frozen=True, slots=True)
class SecretUse:
    where: str
    """``env/NAME``, ``header/Name``, ``arg/3``, ``command/2``, ``url``; a URL's secret query
    parameter adds ``?param``."""
    kind: str
    line: int
    reference: str | None = None
    """The variable, input id or file named; None for literals and placeholders."""
    value: str | None = field(default=None, repr=False)
    """The literal secret (URL-decoded), only for ``inline_secret``: fingerprint it, never
    store it."""
    raw: str | None = field(default=None, repr=False)
    """The literal as written in the file, for redaction."""


@dataclass(frozen=True, slots=True)
class _Found:
    kind: str
    reference: str | None = None
    value: str | None = field(default=None, repr=False)
    raw: str | None = field(default=None, repr=False)
    suffix: str = ""


@lru_cache(maxsize=4096)
def name_is_secret(name: str) -> bool:
    """``GITHUB_TOKEN``, ``X-Api-Key``, ``apiKey``, ``--access-token``: yes; ``TOKEN_URL``: no."""
    words = [word.upper() for word in _WORD_SPLIT.split(name) if word]
    if not words or words[-1] in NOT_SECRET_LAST_WORDS:
        return False
    return any(word in SECRET_WORDS or any(part in word for part in SECRET_PARTS)
               for word in words) or "APIKEY" in "".join(words)


def find_secrets(server: ServerSpec, *, password_inputs: frozenset[str]) -> list[SecretUse]:
    """Every secret reference, placeholder and literal of one server, in document order."""
    uses: list[SecretUse] = []

    def add(located: Located, found: list[_Found]) -> None:
        uses.extend(SecretUse(where=located.where + item.suffix, kind=item.kind,
                              line=located.line, reference=item.reference, value=item.value,
                              raw=item.raw) for item in found)

    for name, located in server.env:
        slot = Slot.STRONG if name_is_secret(name) else Slot.NONE
        add(located, classify(located.text, slot=slot, password_inputs=password_inputs))
    for name, located in server.headers:
        slot = Slot.STRONG if name_is_secret(name) else Slot.NONE
        add(located, classify(located.text, slot=slot, password_inputs=password_inputs))
    for variable, located in server.env_references:
        if name_is_secret(located.where.partition("/")[2]) or name_is_secret(variable):
            add(located, [_Found("env_reference", reference=variable)])
    if server.url is not None:
        add(server.url, classify(server.url.text, slot=Slot.NONE,
                                 password_inputs=password_inputs))
    _scan_argv(server.argv, password_inputs, add)
    return uses


def _scan_argv(argv: list[Located], password_inputs: frozenset[str],
               add: Callable[[Located, list[_Found]], None]) -> None:
    """Flags with values (``--token V``, ``-e NAME=V``, ``--header "Name: V"``) and words."""
    index = 0
    while index < len(argv):
        word = argv[index].text
        if len(word) < MIN_TOKEN and not _MAY_BE_SECRET_WORD.search(word):
            index += 1  # a plain word: a package, a path, a sub-command
            continue
        following = argv[index + 1] if index + 1 < len(argv) else None
        flag = _FLAG.match(word)
        if word in _ENV_FLAGS and following is not None:
            add(following, _env_assignment(following.text, password_inputs))
            index += 2
            continue
        if word in _HEADER_FLAGS and following is not None:
            add(following, _header_line(following.text, password_inputs))
            index += 2
            continue
        if flag and name_is_secret(flag.group(1)) and following is not None \
                and not following.text.startswith("-"):
            add(following, classify(following.text, slot=Slot.WEAK,
                                    password_inputs=password_inputs))
            index += 2
            continue
        add(argv[index], _word(word, password_inputs))
        index += 1


def _word(word: str, password_inputs: frozenset[str]) -> list[_Found]:
    """One argument on its own: ``--flag=V``, ``Name: V``, ``NAME=V`` or a bare value."""
    with_value = _FLAG_WITH_VALUE.match(word) if word[:1] == "-" and "=" in word else None
    if with_value:
        if with_value.group(1) == "env":
            return _env_assignment(with_value.group(2), password_inputs)
        if with_value.group(1) == "header":
            return _header_line(with_value.group(2), password_inputs)
        slot = Slot.STRONG if name_is_secret(with_value.group(1)) else Slot.NONE
        return classify(with_value.group(2), slot=slot, password_inputs=password_inputs)
    header = _HEADER_LINE.match(word) if ":" in word else None
    if header and name_is_secret(header.group(1)):
        return classify(header.group(2), slot=Slot.STRONG, password_inputs=password_inputs)
    if "=" in word and _ASSIGNMENT.match(word):
        return _env_assignment(word, password_inputs)
    return classify(word, slot=Slot.NONE, password_inputs=password_inputs)


def _env_assignment(text: str, password_inputs: frozenset[str]) -> list[_Found]:
    """``NAME=VALUE`` (a literal or reference) or ``NAME`` alone (docker passes the host's)."""
    name, equals, value = text.partition("=")
    if not equals:
        if _ASSIGNMENT.match(f"{name}=") and name_is_secret(name):
            return [_Found("env_reference", reference=name)]
        return []
    slot = Slot.STRONG if name_is_secret(name) else Slot.NONE
    return classify(value, slot=slot, password_inputs=password_inputs)


def _header_line(text: str, password_inputs: frozenset[str]) -> list[_Found]:
    header = _HEADER_LINE.match(text)
    if header is None:
        return classify(text, slot=Slot.NONE, password_inputs=password_inputs)
    slot = Slot.STRONG if name_is_secret(header.group(1)) else Slot.NONE
    return classify(header.group(2), slot=slot, password_inputs=password_inputs)


def classify(text: str, *, slot: Slot, password_inputs: frozenset[str]) -> list[_Found]:
    """The secrets in one value (a URL may hold a password and secret query parameters)."""
    text = text.strip()
    if slot is Slot.NONE and not _MAY_HOLD_SECRET.search(text) and len(text) < MIN_TOKEN:
        return []  # the common case: a plain option, path or word
    if "://" in text and _URL.match(text):  # its secrets: password, secret query parameters
        return _url_secrets(text, password_inputs)
    password = _CONNECTION_PASSWORD.search(text) if "=" in text else None
    if password:
        return _one(password.group(1), Slot.STRONG, password_inputs)
    scheme = _AUTH_SCHEME.match(text) if " " in text else None
    if scheme:
        return _one(scheme.group(1), Slot.STRONG, password_inputs)
    return _one(text, slot, password_inputs)


def _url_secrets(url: str, password_inputs: frozenset[str]) -> list[_Found]:
    found: list[_Found] = []
    rest = url.split("://", 1)[1]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, _host = authority.rpartition("@")
    if at and ":" in userinfo:
        found += _one(userinfo.split(":", 1)[1], Slot.STRONG, password_inputs, decode=True)
    query = rest.partition("?")[2].partition("#")[0]
    for pair in query.split("&"):
        name, equals, value = pair.partition("=")
        if equals and value and name_is_secret(unquote(name)):
            found += [_Found(item.kind, item.reference, item.value, item.raw,
                             suffix=f"?{unquote(name)}")
                      for item in _one(value, Slot.STRONG, password_inputs, decode=True)]
    return found


def _one(text: str, slot: Slot, password_inputs: frozenset[str], *,
         decode: bool = False) -> list[_Found]:
    """Classify one value; ``decode`` undoes URL percent-encoding for the fingerprint."""
    text = text.strip()
    reference = _reference(text, slot, password_inputs) if _REFERENCE_CHARS & set(text) else None
    if reference is not None:
        return [reference] if reference.kind else []
    token_shaped = len(text) >= MIN_TOKEN and _looks_like_token(text)
    if slot is Slot.NONE and not token_shaped:
        return []
    if is_placeholder(text):
        return [_Found("placeholder")] if slot is not Slot.NONE or token_shaped else []
    if token_shaped or (slot is not Slot.NONE and _plausible(text, slot)):
        return [_Found("inline_secret", value=unquote(text) if decode else text, raw=text)]
    return []


def _reference(text: str, slot: Slot, password_inputs: frozenset[str]) -> _Found | None:
    """A reference in ``text``: ``_Found("")`` means a reference that is not a secret."""
    match = _INPUT_REF.search(text)
    if match:
        if slot is not Slot.NONE or match.group(1) in password_inputs:
            return _Found("input_reference", reference=match.group(1))
        return _Found("")
    for pattern in _ENV_REFS:
        match = pattern.search(text)
        if match and match.group(1) not in EDITOR_VARIABLES:
            if slot is not Slot.NONE or name_is_secret(match.group(1)):
                return _Found("env_reference", reference=match.group(1))
            return _Found("")
    match = _FILE_REF.search(text)
    if match:
        return _Found("file_reference", reference=match.group(1)) if slot is not Slot.NONE \
            else _Found("")
    if "${" in text and all(name in EDITOR_VARIABLES
                            for name in re.findall(r"\$\{([^}]*)\}", text)):
        return _Found("")
    return None


def is_placeholder(text: str) -> bool:
    if any(pattern.search(text) for pattern in _PLACEHOLDERS):
        return True
    return bool(_CONSTANT_NAME.match(text)) and name_is_secret(text)


def _looks_like_token(text: str) -> bool:
    return bool(_TOKEN_SHAPES.fullmatch(text) or _PRIVATE_KEY.search(text))


def _plausible(text: str, slot: Slot) -> bool:
    """Could this value in a secret place be the secret itself (not a flag, path or word)?"""
    if text.lower() in NOT_SECRET_VALUES or len(text) < 4:
        return False
    if text.isdigit() and len(text) < 6:
        return False
    if text.startswith(("/", "~/", "./", "../")) or re.match(r"^[A-Za-z]:[\\/]", text):
        return False
    if slot is Slot.WEAK:  # the next word after --token: not a package, not a plain word
        plain_word = re.fullmatch(r"[a-z][a-z-]*", text) is not None
        return len(text) >= 6 and not plain_word and not text.startswith("@")
    return True


def redactor(uses: list[SecretUse]) -> Callable[[str], str]:
    """A function that replaces every literal secret of ``uses`` in a text by ``[REDACTED]``."""
    raws = sorted({use.raw for use in uses if use.raw}, key=len, reverse=True)

    def redact(text: str) -> str:
        for raw in raws:
            text = text.replace(raw, REDACTED)
        return text

    return redact
